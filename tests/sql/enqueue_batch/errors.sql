-- enqueue_batch rejects bad input as a whole: a null element is named by its
-- position and nothing of the batch is added.
begin;
select plan(11);

select pgclaim.create_queue('ebe');

select throws_ok(
    $$ select pgclaim.enqueue_batch('ebe', array['{}', null, '{}']::jsonb []) $$,
    '22004',
    'pgclaim: payloads[2] must not be null (queue ''ebe'')',
    'a null element is named by its 1-based position'
);
select pgclaim_test.rejects(
    $$ select pgclaim.enqueue_batch('ebe', array['{}', '{}', null]::jsonb []) $$, '22004',
    'a batch with a null element'
);
select pgclaim_test.rejects(
    $$ select pgclaim.enqueue_batch('ebe', null) $$, '22004', 'a null array'
);
select pgclaim_test.rejects(
    $$ select pgclaim.enqueue_batch('ebe_missing', array['{}']::jsonb []) $$, 'PC001',
    'an unknown queue'
);
select pgclaim_test.rejects(
    $$ select pgclaim.enqueue_batch('ebe', array['{}']::jsonb [], priority => null) $$, '22004',
    'a null priority'
);
select pgclaim_test.rejects(
    $$ select pgclaim.enqueue_batch('bad name', array['{}']::jsonb []) $$, '22023',
    'an invalid queue name'
);

select * from finish();
rollback;
