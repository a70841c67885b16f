-- queue_stats: one row per queue whose counts equal the table's truth.
begin;
select plan(5);

select pgclaim_test.set_now('2030-01-01 00:00:00+00');
select pgclaim.create_queue('qs', max_attempts => 1);
select pgclaim.create_queue('qs_empty');
select pgclaim.pause_queue('qs_empty');
select pgclaim_test.keep('done_old', pgclaim.enqueue('qs', '{}', priority => 9));
select pgclaim_test.keep('done_new', pgclaim.enqueue('qs', '{}', priority => 8));
select pgclaim_test.keep('failed', pgclaim.enqueue('qs', '{}', priority => 7));
select pgclaim_test.keep('running', pgclaim.enqueue('qs', '{}', priority => 6));
select pgclaim.claim_batch('qs', 'w1', 4);
select pgclaim.complete('w1', array[pgclaim_test.id('done_old')]);
select pgclaim.fail('w1', pgclaim_test.id('failed'), 'no');
select pgclaim.cancel(array[pgclaim.enqueue('qs', '{}')]);
select pgclaim_test.advance('5 minutes');
select pgclaim.enqueue('qs', '{}', run_at => '2029-12-31 23:50:00+00');
select pgclaim.enqueue('qs', '{}');
select pgclaim.enqueue('qs', '{}', run_at => '2030-01-02 00:00:00+00');
select pgclaim_test.advance('30 seconds');
select pgclaim.complete('w1', array[pgclaim_test.id('done_new')]);

select results_eq(
    $$
        select s.paused, s.pending, s.scheduled, s.running, s.completed, s.failed, s.cancelled,
            s.oldest_pending_age, s.completed_last_minute
        from pgclaim.queue_stats as s where s.queue = 'qs'
    $$,
    $$
        values (false, 2::bigint, 1::bigint, 1::bigint, 2::bigint, 1::bigint, 1::bigint,
            '15 minutes 30 seconds'::interval, 1::bigint)
    $$,
    'the counts of every state, the oldest due record''s wait, completions in the last minute'
);
select results_eq(
    $$
        select s.pending, s.scheduled, s.running, s.completed, s.failed, s.cancelled
        from pgclaim.queue_stats as s where s.queue = 'qs'
    $$,
    $$
        select
            pg_catalog.count(*) filter (where r.status = 'pending' and r.run_at <= pgclaim._now()),
            pg_catalog.count(*) filter (where r.status = 'pending' and r.run_at > pgclaim._now()),
            pg_catalog.count(*) filter (where r.status = 'running'),
            pg_catalog.count(*) filter (where r.status = 'completed'),
            pg_catalog.count(*) filter (where r.status = 'failed'),
            pg_catalog.count(*) filter (where r.status = 'cancelled')
        from pgclaim_test.all_records as r where r.queue = 'qs'
    $$,
    'the counts equal those read from the records table'
);
select results_eq(
    $$
        select s.paused, s.pending, s.scheduled, s.running, s.completed, s.failed, s.cancelled,
            s.oldest_pending_age, s.completed_last_minute
        from pgclaim.queue_stats as s where s.queue = 'qs_empty'
    $$,
    $$
        values (true, 0::bigint, 0::bigint, 0::bigint, 0::bigint, 0::bigint, 0::bigint,
            null::interval, 0::bigint)
    $$,
    'an empty paused queue has a row of zeros'
);
select set_eq(
    $$ select s.queue from pgclaim.queue_stats as s $$,
    $$ select q.queue from pgclaim.queues as q $$,
    'one row per queue'
);
select pgclaim_test.advance('1 minute');
select is(
    (
        select s.completed_last_minute from pgclaim.queue_stats as s
        where s.queue = 'qs'
    ),
    0::bigint,
    'completions older than a minute are not counted as recent'
);

select * from finish();
rollback;
