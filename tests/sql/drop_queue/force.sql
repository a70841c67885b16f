-- drop_queue: PC004 while unfinished records remain, force drops them, finished
-- records do not block, unknown queues raise PC001.
begin;
select plan(14);

select pgclaim.create_queue('dq_a');
select pgclaim.create_queue('dq_b');
select pgclaim.create_queue('dq_c');
select pgclaim.create_queue('dq_keep');
select pgclaim.enqueue('dq_a', '{"n": 1}');
select pgclaim.enqueue('dq_a', '{"n": 2}', priority => 1);
select pgclaim.complete('w1', array(select c.id from pgclaim.claim_batch('dq_a', 'w1', 1) as c));
select pgclaim.enqueue('dq_b', '{}');
select pgclaim.complete('w1', array(select c.id from pgclaim.claim_batch('dq_b', 'w1', 1) as c));
select pgclaim_test.keep('kept', pgclaim.enqueue('dq_keep', '{}'));

select pgclaim_test.rejects(
    $$ select pgclaim.drop_queue('dq_a') $$, 'PC004',
    'a queue with a pending record is not dropped without force'
);

select is(pgclaim.drop_queue('dq_a', force => true), 2, 'force drops it and counts its records');
select is_empty(
    $$ select 1 from pgclaim.records as r where r.queue = 'dq_a' $$,
    'its records are gone'
);
select is_empty(
    $$ select 1 from pgclaim.queues as q where q.queue = 'dq_a' $$,
    'the queue is gone'
);
select is_empty(
    $$ select 1 from pgclaim.queue_totals as t where t.queue = 'dq_a' $$,
    'its counters are gone'
);
select isnt_empty(
    $$ select 1 from pgclaim.queue_totals as t where t.queue = 'dq_b' $$,
    'those of other queues stay'
);
select is(pgclaim.drop_queue('dq_b'), 1, 'a queue with only finished records drops without force');
select is(pgclaim.drop_queue('dq_c'), 0, 'an empty queue drops and counts 0 records');
select is(
    pgclaim_test.status(pgclaim_test.id('kept')), 'pending',
    'records of other queues are untouched'
);

select pgclaim_test.rejects(
    $$ select pgclaim.drop_queue('dq_missing') $$, 'PC001', 'an unknown queue'
);
select pgclaim_test.rejects(
    $$ select pgclaim.drop_queue(null) $$, '22004', 'a null queue name'
);

select * from finish();
rollback;
