-- retry_failed puts failed records of a queue (all, or those among ids) back
-- to pending, due now, attempts reset.
begin;
select plan(13);

select pgclaim_test.set_now('2030-01-01 00:00:00+00');
select pgclaim.create_queue('rf', max_attempts => 1);
select pgclaim.create_queue('rf_other', max_attempts => 1);
select pgclaim_test.keep('a', pgclaim.enqueue('rf', '{}', priority => 3));
select pgclaim_test.keep('b', pgclaim.enqueue('rf', '{}', priority => 2));
select pgclaim_test.keep('c', pgclaim.enqueue('rf', '{}', priority => 1));
select pgclaim_test.keep('p', pgclaim.enqueue('rf', '{}'));
select pgclaim_test.keep('o', pgclaim.enqueue('rf_other', '{}'));
select pgclaim.fail('w1', c.id, 'no') from pgclaim.claim_batch('rf', 'w1', 3) as c;
select pgclaim.fail('w1', c.id, 'no') from pgclaim.claim_batch('rf_other', 'w1', 3) as c;
select pgclaim_test.advance('1 hour');

select is(
    pgclaim.retry_failed('rf', array[pgclaim_test.id('a')]), 1,
    'retries the failed id given'
);
select results_eq(
    $$
        select r.status::text, r.attempt, r.run_at, r.finished_at
        from pgclaim_test.all_records as r where r.id = pgclaim_test.id('a')
    $$,
    $$ values ('pending', 0, '2030-01-01 01:00:00+00'::timestamptz, null::timestamptz) $$,
    'the record is pending, due now, attempts reset'
);
select results_eq(
    $$ select c.id, c.attempt from pgclaim.claim_batch('rf', 'w2', 1) as c $$,
    $$ values (pgclaim_test.id('a'), 1) $$,
    'it is claimable again as attempt 1'
);
select is(pgclaim.retry_failed('rf'), 2, 'without ids every failed record of the queue is retried');
select is(
    pgclaim_test.status(pgclaim_test.id('o')),
    'failed',
    'failed records of other queues stay failed'
);
select is(
    pgclaim.retry_failed('rf', array[pgclaim_test.id('p')]), 0, 'a pending record is not touched'
);

select pgclaim.create_queue('rf_dedup', max_attempts => 1);
select pgclaim_test.keep('k_old', pgclaim.enqueue('rf_dedup', '{}', dedup_key => 'k'));
select pgclaim.fail('w1', c.id, 'no') from pgclaim.claim_batch('rf_dedup', 'w1') as c;
select pgclaim_test.keep('k_new', pgclaim.enqueue('rf_dedup', '{}', dedup_key => 'k'));
select lives_ok(
    $$ select pgclaim.retry_failed('rf_dedup') $$,
    'retrying a failed record whose dedup_key a newer unfinished record holds does not fail'
);
select is(
    (
        select pg_catalog.count(*)::int from pgclaim_test.all_records as r
        where r.queue = 'rf_dedup' and r.dedup_key = 'k' and r.status = 'pending'
    ),
    1,
    'and leaves one unfinished record per dedup_key'
);
select is(
    pgclaim_test.status(pgclaim_test.id('k_old')), 'failed',
    'the failed record whose key is taken stays failed'
);

select pgclaim.create_queue('rf_dedup2', max_attempts => 1);
select pgclaim_test.keep('j1', pgclaim.enqueue('rf_dedup2', '{}', dedup_key => 'j'));
select pgclaim.fail('w1', c.id, 'no') from pgclaim.claim_batch('rf_dedup2', 'w1') as c;
select pgclaim_test.keep('j2', pgclaim.enqueue('rf_dedup2', '{}', dedup_key => 'j'));
select pgclaim.fail('w1', c.id, 'no') from pgclaim.claim_batch('rf_dedup2', 'w1') as c;
select is(
    pgclaim.retry_failed('rf_dedup2'), 1,
    'of two failed records sharing a free dedup_key one is retried'
);
select results_eq(
    $$
        select r.id, r.status::text from pgclaim_test.all_records as r
        where r.id in (pgclaim_test.id('j1'), pgclaim_test.id('j2')) order by r.id
    $$,
    $$ values (pgclaim_test.id('j1'), 'failed'), (pgclaim_test.id('j2'), 'pending') $$,
    'the newest of them is the one retried'
);

select pgclaim_test.rejects(
    $$ select pgclaim.retry_failed('rf_missing') $$, 'PC001', 'an unknown queue'
);

select * from finish();
rollback;
