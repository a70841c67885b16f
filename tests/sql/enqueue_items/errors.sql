-- enqueue_items refuses bad items, naming their position, and adds nothing.
begin;
select plan(23);

select pgclaim.create_queue('eie', max_batch => 3, max_attempts => 3);
select pgclaim_test.rejects(
    $$ select pgclaim.enqueue_items('eie', null) $$, '22004', 'null items'
);
select pgclaim_test.rejects(
    $$ select pgclaim.enqueue_items('eie', '{}') $$, '22023', 'items not an array'
);
select pgclaim_test.rejects(
    $$ select pgclaim.enqueue_items('eie', '[{"payload": 1}, 2]') $$, '22023',
    'an item not an object'
);
select pgclaim_test.rejects(
    $$ select pgclaim.enqueue_items('eie', '[{"payload": 1}, {"priority": 1}]') $$, '22004',
    'an item without payload'
);
select pgclaim_test.rejects(
    $$ select pgclaim.enqueue_items('eie', '[{"payload": 1, "colour": "red"}]') $$, '22023',
    'an unknown key'
);
select pgclaim_test.rejects(
    $$ select pgclaim.enqueue_items('eie', '[{"payload": 1, "priority": "high"}]') $$, '22023',
    'a priority of the wrong type'
);
select pgclaim_test.rejects(
    $$ select pgclaim.enqueue_items('eie', '[{"payload": 1, "run_at": "soon"}]') $$, '22023',
    'a run_at that is no time'
);
select pgclaim_test.rejects(
    $$ select pgclaim.enqueue_items('eie', '[{"payload": 1, "max_attempts": 4}]') $$, '22023',
    'max_attempts above the queue''s'
);
select pgclaim_test.rejects(
    $$ select pgclaim.enqueue_items('eie', '[{"payload": 1, "group_key": ""}]') $$, '22023',
    'an empty group_key'
);
select pgclaim_test.rejects(
    $$ select pgclaim.enqueue_items('eie', '[{"payload": 1, "dedup_key": 5}]') $$, '22023',
    'a dedup_key that is no string'
);
select pgclaim_test.rejects(
    $$ select pgclaim.enqueue_items('eie', '[{"payload": 1}, {"payload": 1}, {"payload": 1},
        {"payload": 1}]') $$, '22023',
    'more items than max_batch'
);
select throws_like(
    $$ select pgclaim.enqueue_items('eie', '[{"payload": 1}, {"payload": 1, "priority": 5000}]') $$,
    '%priority%', 'the message names the bad value'
);

select * from finish();
rollback;
