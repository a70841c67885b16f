-- Fencing by lease_token: the same worker re-claiming a record cannot report on
-- the new attempt with the old attempt's token.
begin;
select plan(8);

select pgclaim_test.set_now('2030-01-01 00:00:00+00');
select pgclaim.create_queue('ft', lease => '1 minute');
select pgclaim_test.keep('a', pgclaim.enqueue('ft', '{}'));
create temp table c1 on commit drop as
select * from pgclaim.claim_batch('ft', 'w1');
select pgclaim_test.advance('2 minutes');
create temp table c2 on commit drop as
select * from pgclaim.claim_batch('ft', 'w1');

select results_eq(
    $$ select c.id, c.attempt from c2 as c $$,
    $$ values (pgclaim_test.id('a'), 2) $$,
    'the same worker claimed the record again as attempt 2'
);
select isnt(
    (select c.lease_token from c2 as c), (select c.lease_token from c1 as c),
    'under a new lease_token'
);
select
    pgclaim_test.keep('before', (
        select r::text from pgclaim.records as r
        where r.id = pgclaim_test.id('a')
    ));

select is(
    pgclaim.complete('w1', array[pgclaim_test.id('a')], array[(select c.lease_token from c1 as c)]),
    0,
    'complete with the old token changes 0 rows'
);
select is(
    pgclaim.extend_lease(
        'w1', array[pgclaim_test.id('a')], null, array[(select c.lease_token from c1 as c)]
    ),
    0,
    'extend_lease with the old token changes 0 rows'
);
select is(
    pgclaim.release('w1', array[pgclaim_test.id('a')], array[(select c.lease_token from c1 as c)]),
    0,
    'release with the old token changes 0 rows'
);
select throws_ok(
    format(
        $$ select pgclaim.fail('w1', %s, 'late', lease_token => %s) $$,
        pgclaim_test.id('a'), (select c.lease_token from c1 as c)
    ),
    'PC003', null,
    'fail with the old token is refused'
);
select is(
    (
        select r::text from pgclaim.records as r
        where r.id = pgclaim_test.id('a')
    ),
    pgclaim_test.kept('before'),
    'the record is exactly as the new claim left it'
);
select is(
    pgclaim.complete('w1', array[pgclaim_test.id('a')], array[(select c.lease_token from c2 as c)]),
    1,
    'the current token completes it'
);

select * from finish();
rollback;
