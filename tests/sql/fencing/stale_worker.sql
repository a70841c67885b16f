-- Fencing: once a record was reclaimed and claimed by another worker, the
-- former holder's reports change nothing.
begin;
select plan(8);

select pgclaim_test.set_now('2030-01-01 00:00:00+00');
select pgclaim.create_queue('fs', lease => '1 minute');
select pgclaim_test.keep('a', pgclaim.enqueue('fs', '{}'));
select pgclaim.claim_batch('fs', 'w1');
select pgclaim_test.advance('2 minutes');
create temp table c2 on commit drop as
select * from pgclaim.claim_batch('fs', 'w2');

select results_eq(
    $$ select c.id, c.attempt from c2 as c $$,
    $$ values (pgclaim_test.id('a'), 2) $$,
    'the expired record was swept and claimed by the second worker'
);
select
    pgclaim_test.keep('before', (
        select r::text from pgclaim.records as r
        where r.id = pgclaim_test.id('a')
    ));

select is(
    pgclaim.complete('w1', array[pgclaim_test.id('a')]), 0,
    'the stale complete changes 0 rows'
);
select is(
    pgclaim.extend_lease('w1', array[pgclaim_test.id('a')]), 0,
    'the stale extend_lease changes 0 rows'
);
select is(
    pgclaim.release('w1', array[pgclaim_test.id('a')]), 0,
    'the stale release changes 0 rows'
);
select throws_ok(
    format($$ select pgclaim.fail('w1', %s, 'late') $$, pgclaim_test.id('a')), 'PC003', null,
    'the stale fail is refused'
);
select is(
    (
        select r::text from pgclaim.records as r
        where r.id = pgclaim_test.id('a')
    ),
    pgclaim_test.kept('before'),
    'the new holder''s record is exactly as it was'
);
select is(
    pgclaim.complete('w2', array[pgclaim_test.id('a')], array[(select c.lease_token from c2 as c)]),
    1,
    'the new holder completes it'
);
select is(
    pgclaim.complete('w1', array[pgclaim_test.id('a')]), 0,
    'the stale worker cannot complete it afterwards either'
);

select * from finish();
rollback;
