-- metrics: every way an attempt ends adds to its own counter, claims is every
-- attempt handed out (ended ones plus the running records), and no counter goes
-- down: purge, retry_failed and cancelling pending records leave claims alone.
begin;
select plan(17);

select pgclaim_test.set_now('2030-01-01 00:00:00+00');
select pgclaim.create_queue('m', max_attempts => 2, lease => '1 minute');
select pgclaim.create_queue('m_other');

-- The value of one metric of queue m (or, with whole, of the database).
create function pg_temp.m(name text, status text default null, whole boolean default false)
returns double precision
language sql
as $$
    select x.value from pgclaim.metrics() as x
    where x.metric = name and x.status is not distinct from m.status
      and x.queue is not distinct from case when whole then null else 'm' end
$$;
-- All counters of queue m, in a fixed order.
create function pg_temp.counters()
returns double precision[]
language sql
as $$
    select array[
        pg_temp.m('claims_total'), pg_temp.m('completions_total'),
        pg_temp.m('failures_total'), pg_temp.m('retries_total'),
        pg_temp.m('reclaims_total'), pg_temp.m('releases_total'),
        pg_temp.m('dead_letters_total'), pg_temp.m('cancellations_total')
    ]
$$;

select is(
    pg_temp.counters(), array[0, 0, 0, 0, 0, 0, 0, 0]::double precision[],
    'a new queue has every counter at 0'
);

select pgclaim_test.keep(v.name, pgclaim.enqueue('m', '{}', priority => v.p))
from (values ('a', 6), ('b', 5), ('c', 4), ('d', 3), ('e', 2), ('f', 1)) as v (name, p);
select pgclaim.enqueue('m_other', '{}');
select pgclaim.claim_batch('m', 'w1', 6);
select is(pg_temp.m('claims_total'), 6::double precision, 'a claim counts at once');

select pgclaim.complete('w1', array[pgclaim_test.id('a')]);
select pgclaim.fail('w1', pgclaim_test.id('b'), 'once');
select pgclaim.fail('w1', pgclaim_test.id('c'), 'never', fatal => true);
select pgclaim.release('w1', array[pgclaim_test.id('d')]);
select pgclaim.cancel(array[pgclaim_test.id('e')]);
select pgclaim_test.advance('2 minutes');
select pgclaim.reclaim_orphans();
select is(
    pg_temp.counters(), array[6, 1, 2, 1, 1, 1, 1, 1]::double precision[],
    'complete, fail (retried), fail (fatal, dead), release, cancel and reclaim: one each, '
    'claims unchanged as attempts end'
);

select pgclaim.claim_batch('m', 'w1', 6);
select is(pg_temp.m('records', 'running'), 3::double precision, 'three records run again');
select pgclaim.fail_batch(
    'w1', array[pgclaim_test.id('b'), pgclaim_test.id('d')], array['again', 'first']
);
select pgclaim.complete('w1', array[pgclaim_test.id('f')]);
select is(
    pg_temp.counters(), array[9, 2, 4, 2, 1, 1, 2, 1]::double precision[],
    'fail_batch: b dead on its last attempt, d retried; f completed'
);

select pgclaim_test.advance('1 second');
select pgclaim.retry_failed('m');
select pgclaim.purge('m', older_than => '0 seconds');
select pgclaim.cancel(array[pgclaim.enqueue('m', '{}')]);
select is(
    pg_temp.counters(), array[9, 2, 4, 2, 1, 1, 2, 2]::double precision[],
    'purge and retry_failed change no counter; cancelling a pending record counts a '
    'cancellation, no claim'
);
select is(
    (
        select s.completed from pgclaim.queue_stats as s
        where s.queue = 'm'
    ), 0::bigint,
    'while queue_stats.completed counts the completed records kept'
);

select pgclaim.claim_batch('m', 'w1', 1);
select pgclaim.deregister_worker('w1');
select is(
    pg_temp.counters(), array[10, 2, 4, 2, 1, 2, 2, 2]::double precision[],
    'deregister_worker counts a release; the claim stays counted'
);

select pgclaim.claim_batch('m', 'w2', 1);
select pgclaim.cancel(array[(
    select r.id from pgclaim.records as r
    where r.status = 'running'
)]);
select is(
    pg_temp.counters(), array[11, 2, 4, 2, 1, 2, 2, 3]::double precision[],
    'cancelling a running record ends its attempt: claims stays'
);

-- Gauges.
select pgclaim.enqueue('m', '{}', run_at => '2030-01-01 00:00:00+00');
select pgclaim.enqueue('m', '{}', run_at => '2030-02-01 00:00:00+00');
select pgclaim.claim_batch('m', 'w3', 1);
select pgclaim.pause_queue('m');
select pgclaim.register_worker('w2');
select pgclaim.register_worker('w3');
select results_eq(
    $$
        select pg_temp.m('records', 'pending'), pg_temp.m('records', 'scheduled'),
            pg_temp.m('records', 'running'), pg_temp.m('oldest_pending_age_seconds'),
            pg_temp.m('queue_paused')
    $$,
    $$
        select s.pending::double precision, s.scheduled::double precision,
            s.running::double precision,
            extract(epoch from s.oldest_pending_age)::double precision, 1::double precision
        from pgclaim.queue_stats as s where s.queue = 'm'
    $$,
    'records by status and the oldest due record''s wait in seconds, as queue_stats has them; '
    'paused'
);
select ok(
    pg_temp.m('records', 'scheduled') > 0 and pg_temp.m('oldest_pending_age_seconds') >= 120,
    'scheduled records and a due record that has waited are there to count'
);
select results_eq(
    $$ select pg_temp.m('workers', 'alive', true), pg_temp.m('workers', 'dead', true) $$,
    $$ values (2::double precision, 0::double precision) $$,
    'workers alive and dead (w1 was deregistered)'
);
select pgclaim_test.advance('1 hour');
select is(pg_temp.m('workers', 'dead', true), 2::double precision, 'silent workers are dead');

select set_eq(
    $$ select distinct x.metric from pgclaim.metrics() as x $$,
    $$
        values ('records'), ('oldest_pending_age_seconds'), ('queue_paused'),
        ('claims_total'), ('completions_total'), ('failures_total'), ('retries_total'),
        ('reclaims_total'), ('releases_total'), ('dead_letters_total'),
        ('cancellations_total'), ('workers')
    $$,
    'the documented metrics'
);

-- A scrape reads no finished record, however many are kept (pg_stat_xact_* counts
-- this transaction's scans).
create function pg_temp.finished_scans()
returns bigint
language sql
as $$
    select s.seq_scan + coalesce(s.idx_scan, 0) from pg_catalog.pg_stat_xact_user_tables as s
    where s.relid = 'pgclaim.finished'::regclass
$$;
select pgclaim_test.keep('scans', pg_temp.finished_scans());
select pgclaim.metrics();
select is(
    pg_temp.finished_scans(), pgclaim_test.id('scans'), 'metrics() reads no finished record'
);
select s.queue from pgclaim.queue_stats as s;
select isnt(
    pg_temp.finished_scans(), pgclaim_test.id('scans'),
    'where queue_stats does (so the check above can fail)'
);

select set_eq(
    $$ select x.status from pgclaim.metrics() as x where x.metric = 'records' and x.queue = 'm' $$,
    $$ values ('pending'), ('scheduled'), ('running'), ('blocked') $$,
    'records by each unfinished status, blocked (behind the head of a FIFO group) included'
);

select * from finish();
rollback;
