-- register_worker records a worker and its first heartbeat; registering again
-- refreshes info and last_seen but keeps started_at.
begin;
select plan(13);

select pgclaim_test.set_now('2030-01-01 00:00:00+00');

select pgclaim.register_worker('w1', '{"host": "h1"}');
select results_eq(
    $$
        select w.info, w.started_at, w.last_seen from pgclaim.workers as w
        where w.worker_id = 'w1'
    $$,
    $$
        values ('{"host": "h1"}'::jsonb, '2030-01-01 00:00:00+00'::timestamptz,
            '2030-01-01 00:00:00+00'::timestamptz)
    $$,
    'the worker is stored with its info and first heartbeat'
);

select pgclaim_test.advance('1 minute');
select pgclaim.register_worker('w1', '{"host": "h2"}');
select results_eq(
    $$
        select w.info, w.started_at, w.last_seen from pgclaim.workers as w
        where w.worker_id = 'w1'
    $$,
    $$
        values ('{"host": "h2"}'::jsonb, '2030-01-01 00:00:00+00'::timestamptz,
            '2030-01-01 00:01:00+00'::timestamptz)
    $$,
    'registering again refreshes info and last_seen, keeps started_at'
);

select pgclaim.register_worker('w2');
select is(
    (
        select w.info from pgclaim.workers as w
        where w.worker_id = 'w2'
    ), '{}'::jsonb,
    'info defaults to an empty object'
);

select pgclaim_test.rejects(
    $$ select pgclaim.register_worker(null) $$, '22004', 'a null worker_id'
);
select pgclaim_test.rejects(
    $$ select pgclaim.register_worker('') $$, '22023', 'an empty worker_id'
);
select pgclaim_test.rejects(
    $$ select pgclaim.register_worker(e'w\t1') $$, '22023', 'a worker_id with a control character'
);
select pgclaim_test.rejects(
    $$ select pgclaim.register_worker(pg_catalog.repeat('w', 201)) $$, '22023',
    'a worker_id of 201 characters'
);
select pgclaim_test.rejects(
    $$ select pgclaim.register_worker('w3', null) $$, '22004', 'a null info'
);

select * from finish();
rollback;
