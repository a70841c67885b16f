-- fail at max_attempts, or with fatal, dead-letters the record as failed.
begin;
select plan(7);

select pgclaim_test.set_now('2030-01-01 00:00:00+00');
select pgclaim.create_queue('dl', max_attempts => 2);
select pgclaim_test.keep('a', pgclaim.enqueue('dl', '{}'));
select pgclaim.claim_batch('dl', 'w1');

select is(pgclaim.fail('w1', pgclaim_test.id('a'), 'one'), 'pending', 'attempt 1 of 2: pending');
select pgclaim_test.advance('1 hour');
select pgclaim.claim_batch('dl', 'w1');
select is(pgclaim.fail('w1', pgclaim_test.id('a'), 'two'), 'failed', 'attempt 2 of 2: failed');
select results_eq(
    $$
        select r.status::text, r.attempt, r.finished_at, r.last_error, r.lease_until
        from pgclaim_test.all_records as r where r.id = pgclaim_test.id('a')
    $$,
    $$ values ('failed', 2, '2030-01-01 01:00:00+00'::timestamptz, 'two', null::timestamptz) $$,
    'the dead-lettered record is failed, finished now, with its last error'
);

select pgclaim_test.keep('b', pgclaim.enqueue('dl', '{}'));
select pgclaim.claim_batch('dl', 'w1');
select is(
    pgclaim.fail('w1', pgclaim_test.id('b'), 'bad input', fatal => true), 'failed',
    'a fatal failure dead-letters at the first attempt'
);
select results_eq(
    $$
        select r.status::text, r.attempt from pgclaim_test.all_records as r
        where r.id = pgclaim_test.id('b')
    $$,
    $$ values ('failed', 1) $$,
    'the record is failed after one attempt'
);

select pgclaim_test.keep('c', pgclaim.enqueue('dl', '{}', max_attempts => 1));
select pgclaim.claim_batch('dl', 'w1');
select is(
    pgclaim.fail('w1', pgclaim_test.id('c'), 'once'), 'failed',
    'a record''s own max_attempts (1) is honoured'
);
select is_empty(
    $$ select * from pgclaim.claim_batch('dl', 'w2') $$, 'failed records are never handed out'
);

select * from finish();
rollback;
