-- release gives held records back, pending at once, without counting the attempt.
begin;
select plan(10);

select pgclaim_test.set_now('2030-01-01 00:00:00+00');
select pgclaim.create_queue('rl');
select pgclaim_test.keep('a', pgclaim.enqueue('rl', '{}', priority => 1));
select pgclaim_test.keep('b', pgclaim.enqueue('rl', '{}'));
select pgclaim.claim_batch('rl', 'w1', 2);

select is(pgclaim.release('w1', array[pgclaim_test.id('a')]), 1, 'the holder releases a record');
select results_eq(
    $$
        select r.status::text, r.attempt, r.worker_id, r.lease_until, r.lease_token
        from pgclaim.records as r where r.id = pgclaim_test.id('a')
    $$,
    $$ values ('pending', 0, null::text, null::timestamptz, null::bigint) $$,
    'it is pending again, attempt not counted, held by nobody'
);
select results_eq(
    $$ select c.id, c.attempt from pgclaim.claim_batch('rl', 'w2', 1) as c $$,
    $$ values (pgclaim_test.id('a'), 1) $$,
    'it is claimable at once, as attempt 1'
);
select is(
    pgclaim.release('w1', array[pgclaim_test.id('a')]), 0,
    'its former holder cannot release it from the new holder'
);
select is(
    pgclaim.release('w1', array[pgclaim_test.id('b')], array[-1::bigint]), 0,
    'a wrong lease_token releases nothing'
);
select is(pgclaim_test.status(pgclaim_test.id('b')), 'running', 'the record stays running');

select pgclaim_test.rejects(
    format($$ select pgclaim.release(null, array[%s::bigint]) $$, pgclaim_test.id('b')),
    '22004', 'a null worker_id'
);
select pgclaim_test.rejects(
    format($$ select pgclaim.release('', array[%s::bigint]) $$, pgclaim_test.id('b')),
    '22023', 'an empty worker_id'
);

select * from finish();
rollback;
