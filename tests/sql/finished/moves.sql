-- Finished records leave pgclaim.records for pgclaim.finished in the statement that
-- finishes them, with their id and row; the completed total is counted in
-- queue_totals; purge and drop_queue take them away again; retry_failed brings a
-- dead letter back with its id.
begin;
select plan(16);

select pgclaim_test.set_now('2030-01-01 00:00:00+00');
select pgclaim.create_queue('mv', max_attempts => 1, retention => '1 day');
select pgclaim.enqueue_batch('mv', array['{"n": 1}', '{"n": 2}', '{"n": 3}', '{"n": 4}']::jsonb[]);
create temp table c on commit drop as
select * from pgclaim.claim_batch('mv', 'w1', 3);
select pgclaim_test.advance('1 second');

select is(
    pgclaim.complete('w1', array(
        select c.id from c
        order by c.id limit 2
    )), 2,
    'two records complete'
);
select is(
    (
        select pg_catalog.count(*)::int from pgclaim.records as r
        where r.queue = 'mv'
    ), 2,
    'pgclaim.records keeps only the unfinished ones'
);
select results_eq(
    $$
        select f.id, f.status::text, f.payload, f.attempt, f.worker_id, f.finished_at,
            f.lease_until
        from pgclaim.finished as f order by f.id
    $$,
    $$
        select c.id, 'completed', c.payload, 1, 'w1', '2030-01-01 00:00:01+00'::timestamptz,
            null::timestamptz
        from c order by c.id limit 2
    $$,
    'pgclaim.finished has them, with their id, payload, attempt and worker'
);
select is(
    (
        select s.completed from pgclaim.queue_stats as s
        where s.queue = 'mv'
    ), 2::bigint,
    'queue_stats counts the completions from queue_totals'
);
select is(
    pgclaim.fail('w1', (
        select c.id from c
        order by c.id desc limit 1
    ), 'boom'), 'failed',
    'a dead letter ...'
);
select is(
    (
        select f.status::text || ' ' || f.last_error from pgclaim.finished as f
        where f.id = (
            select c.id from c
            order by c.id desc limit 1
        )
    ),
    'failed boom', '... moves too, with its error'
);
select is(
    pgclaim.cancel(array(
        select r.id from pgclaim.records as r
        where r.queue = 'mv'
    )), 1,
    'cancelling the pending record ...'
);
select is(
    (
        select pg_catalog.count(*)::int from pgclaim.records as r
        where r.queue = 'mv'
    ), 0,
    '... leaves pgclaim.records empty'
);
select is(
    pgclaim.retry_failed('mv'), 1, 'retry_failed brings the dead letter back'
);
select results_eq(
    $$
        select r.id, r.status::text, r.attempt from pgclaim.records as r where r.queue = 'mv'
    $$,
    $$ select c.id, 'pending', 0 from c order by c.id desc limit 1 $$,
    'with its id, pending, attempts reset'
);
select is(
    (
        select pg_catalog.count(*)::int from pgclaim.finished as f
        where f.status = 'failed'
    ), 0,
    'and it is no longer in pgclaim.finished'
);
select throws_ok(
    $$ insert into pgclaim.records (queue, status, run_at, payload, max_attempts, enqueued_at)
       values ('mv', 'completed', pgclaim._now(), '{}', 1, pgclaim._now()) $$,
    '23514', null, 'pgclaim.records refuses a finished status'
);

select pgclaim_test.advance('2 days');
select is(pgclaim.purge('mv'), 3, 'purge deletes the finished records past retention');
select is(
    (
        select s.completed from pgclaim.queue_stats as s
        where s.queue = 'mv'
    ), 0::bigint,
    'and the completed total follows'
);
select is(
    pgclaim.drop_queue('mv', true), 1, 'drop_queue deletes the rest'
);
select is(
    (
        select pg_catalog.count(*)::int from pgclaim.queue_totals as t
        where t.queue = 'mv'
    ), 0,
    'with the queue''s counters'
);

select * from finish();
rollback;
