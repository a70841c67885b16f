-- fail with retry_after overrides the backoff; the record is released.
begin;
select plan(6);

select pgclaim_test.set_now('2030-01-01 00:00:00+00');
select pgclaim.create_queue('ra');
select pgclaim_test.keep('a', pgclaim.enqueue('ra', '{}'));
select pgclaim.claim_batch('ra', 'w1');

select is(
    pgclaim.fail('w1', pgclaim_test.id('a'), 'later', retry_after => '42 seconds'), 'pending',
    'fail returns the new status'
);
select results_eq(
    $$
        select r.run_at, r.worker_id, r.lease_until, r.lease_token, r.last_error
        from pgclaim.records as r where r.id = pgclaim_test.id('a')
    $$,
    $$
        values (
            '2030-01-01 00:00:42+00'::timestamptz, null::text, null::timestamptz,
            null::bigint, 'later'
        )
    $$,
    'due exactly retry_after from now, released, the error kept'
);

select pgclaim_test.advance('42 seconds');
select pgclaim.claim_batch('ra', 'w1');
select pgclaim.fail('w1', pgclaim_test.id('a'), 'now', retry_after => '0 seconds');
select results_eq(
    $$ select c.id, c.attempt from pgclaim.claim_batch('ra', 'w2') as c $$,
    $$ values (pgclaim_test.id('a'), 3) $$,
    'retry_after 0 makes the record claimable at once'
);

select pgclaim_test.rejects(
    format(
        $$ select pgclaim.fail('w2', %s, 'x', retry_after => '-1 second') $$,
        pgclaim_test.id('a')
    ),
    '22023', 'a negative retry_after'
);
select is(pgclaim_test.status(pgclaim_test.id('a')), 'running', 'the record is still held');

select * from finish();
rollback;
