-- One record's whole life: dedup, claim, fail, backoff, retry, dead letter,
-- retry_failed, reclaim, pause, cancel, a new record for the same key, purge.
begin;
select plan(24);

select pgclaim_test.set_now('2030-01-01 00:00:00+00');
select pgclaim.create_queue(
    'life', lease => '1 minute', max_attempts => 2, backoff_base => '10 seconds',
    backoff_max => '1 minute', retention => '1 day'
);

select pgclaim_test.keep('a', pgclaim.enqueue('life', '{"order": 1}', dedup_key => 'order-1'));
select is(
    pgclaim.enqueue('life', '{"order": 1}', dedup_key => 'order-1'), pgclaim_test.id('a'),
    'dedup: the same key returns the pending record'
);
select results_eq(
    $$ select c.id, c.attempt from pgclaim.claim_batch('life', 'w1') as c $$,
    $$ values (pgclaim_test.id('a'), 1) $$,
    'claim: attempt 1'
);
select is(pgclaim.fail('w1', pgclaim_test.id('a'), 'first'), 'pending', 'fail: back to pending');
select is_empty(
    $$ select * from pgclaim.claim_batch('life', 'w1') $$, 'backoff: not claimable at once'
);
select pgclaim_test.advance('10 seconds');
select results_eq(
    $$ select c.id, c.attempt from pgclaim.claim_batch('life', 'w1') as c $$,
    $$ values (pgclaim_test.id('a'), 2) $$,
    'retry: claimable again after at most backoff_base, attempt 2'
);
select is(
    pgclaim.fail('w1', pgclaim_test.id('a'), 'second'), 'failed',
    'dead letter: the last attempt fails'
);
select is(
    (
        select s.failed from pgclaim.queue_stats as s
        where s.queue = 'life'
    ), 1::bigint,
    'queue_stats counts the failed record'
);
select is(pgclaim.retry_failed('life'), 1, 'retry_failed puts it back');
select results_eq(
    $$
        select r.status::text, r.attempt from pgclaim_test.all_records as r
        where r.id = pgclaim_test.id('a')
    $$,
    $$ values ('pending', 0) $$,
    'pending with its attempts reset'
);
select pgclaim.register_worker('w2');
select results_eq(
    $$ select c.id, c.attempt from pgclaim.claim_batch('life', 'w2', lease => '1 hour') as c $$,
    $$ values (pgclaim_test.id('a'), 1) $$,
    'a second worker claims it'
);
select pgclaim_test.advance('2 minutes');
select is(pgclaim.reclaim_orphans(), 1, 'reclaim: the silent worker''s record is taken back');
select results_eq(
    $$
        select r.status::text, r.attempt from pgclaim_test.all_records as r
        where r.id = pgclaim_test.id('a')
    $$,
    $$ values ('pending', 1) $$,
    'pending, its attempt counted'
);
select pgclaim.pause_queue('life');
select is_empty(
    $$ select * from pgclaim.claim_batch('life', 'w3') $$, 'pause: nothing is handed out'
);
select pgclaim.resume_queue('life');
select results_eq(
    $$ select c.id, c.attempt from pgclaim.claim_batch('life', 'w3') as c $$,
    $$ values (pgclaim_test.id('a'), 2) $$,
    'resume: handed out again'
);
select is(pgclaim.cancel(array[pgclaim_test.id('a')]), 1, 'cancel: the running record');
select is(
    pgclaim.complete('w3', array[pgclaim_test.id('a')]), 0,
    'its holder can no longer complete it'
);
select pgclaim_test.keep('b', pgclaim.enqueue('life', '{"order": 1}', dedup_key => 'order-1'));
select isnt(
    pgclaim_test.id('b'), pgclaim_test.id('a'), 'dedup: the key is free once the record is finished'
);
select pgclaim.complete('w3', array(select c.id from pgclaim.claim_batch('life', 'w3') as c));
select is(pgclaim_test.status(pgclaim_test.id('b')), 'completed', 'the new record completes');
select results_eq(
    $$
        select s.pending, s.running, s.completed, s.failed, s.cancelled
        from pgclaim.queue_stats as s where s.queue = 'life'
    $$,
    $$ values (0::bigint, 0::bigint, 1::bigint, 0::bigint, 1::bigint) $$,
    'queue_stats: one completed, one cancelled'
);
select is(pgclaim.purge('life'), 0, 'purge keeps records within retention');
select pgclaim_test.advance('1 day 1 second');
select is(pgclaim.purge('life'), 2, 'purge removes both finished records after retention');
select is_empty(
    $$ select 1 from pgclaim_test.all_records as r where r.queue = 'life' $$, 'the queue is empty'
);
select is(pgclaim.drop_queue('life'), 0, 'and can be dropped without force');
select is(
    pgclaim.health(max_xact_age => '100 years') -> 'workers', '{"alive": 0, "dead": 1}'::jsonb,
    'the silent worker is still listed as dead until it deregisters'
);

select * from finish();
rollback;
