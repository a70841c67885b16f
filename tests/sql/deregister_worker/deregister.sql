-- deregister_worker releases what the worker holds (attempt not counted) and
-- forgets the worker.
begin;
select plan(9);

select pgclaim.create_queue('dw');
select pgclaim.enqueue_batch('dw', array['{}', '{}', '{}']::jsonb[]);
select pgclaim.register_worker('w1');
select pgclaim.register_worker('w2');
select pgclaim.claim_batch('dw', 'w1', 2);
select pgclaim.claim_batch('dw', 'w2', 1);

select is(pgclaim.deregister_worker('w1'), 2, 'returns how many records it released');
select results_eq(
    $$
        select r.status::text, r.attempt, r.worker_id, r.lease_until
        from pgclaim.records as r where r.queue = 'dw' and r.status <> 'running'
    $$,
    $$ values ('pending', 0, null::text, null::timestamptz), ('pending', 0, null, null) $$,
    'its records are pending, attempt not counted, held by nobody'
);
select is_empty(
    $$ select 1 from pgclaim.workers as w where w.worker_id = 'w1' $$, 'the worker is forgotten'
);
select is(
    (
        select r.worker_id from pgclaim.records as r
        where r.status = 'running' and r.queue = 'dw'
    ),
    'w2',
    'another worker keeps its record'
);
select is(pgclaim.deregister_worker('w_unknown'), 0, 'an unknown worker releases nothing');

select pgclaim_test.rejects(
    $$ select pgclaim.deregister_worker(null) $$, '22004', 'a null worker_id'
);
select pgclaim_test.rejects(
    $$ select pgclaim.deregister_worker('') $$, '22023', 'an empty worker_id'
);

select * from finish();
rollback;
