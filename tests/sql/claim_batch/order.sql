-- claim_batch hands out due records in (priority desc, run_at, id) order and
-- never a record that is not due.
begin;
select plan(4);

select pgclaim_test.set_now('2030-01-01 00:00:00+00');
select pgclaim.create_queue('co');
select pgclaim_test.keep('a', pgclaim.enqueue('co', '{}', run_at => '2029-12-31 23:57:00+00'));
select pgclaim_test.keep(
    'b', pgclaim.enqueue('co', '{}', priority => 5, run_at => '2029-12-31 23:59:00+00')
);
select pgclaim_test.keep('c', pgclaim.enqueue('co', '{}', run_at => '2029-12-31 23:55:00+00'));
select pgclaim_test.keep(
    'd', pgclaim.enqueue('co', '{}', priority => 5, run_at => '2029-12-31 23:59:00+00')
);
select pgclaim_test.keep('e', pgclaim.enqueue('co', '{}', run_at => '2030-01-01 01:00:00+00'));
select pgclaim_test.keep(
    'f', pgclaim.enqueue('co', '{}', priority => -1, run_at => '2029-12-31 23:50:00+00')
);

select results_eq(
    $$ select c.id from pgclaim.claim_batch('co', 'w1', 3) as c $$,
    $$ values (pgclaim_test.id('b')), (pgclaim_test.id('d')), (pgclaim_test.id('c')) $$,
    'priority first, then run_at, then id'
);
select results_eq(
    $$ select c.id from pgclaim.claim_batch('co', 'w2', 10) as c $$,
    $$ values (pgclaim_test.id('a')), (pgclaim_test.id('f')) $$,
    'the next claim continues in that order and skips records already held'
);
select is(
    pgclaim_test.status(pgclaim_test.id('e')), 'pending',
    'a record not yet due stays pending'
);
select is_empty(
    $$ select * from pgclaim.claim_batch('co', 'w3', 10) $$,
    'nothing is left to claim'
);

select * from finish();
rollback;
