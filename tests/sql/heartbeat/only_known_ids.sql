-- heartbeat with ids extends only the leases among them: a record whose claim
-- reply the worker never received is not kept alive and comes back.
begin;
select plan(4);

select pgclaim_test.set_now('2030-01-01 00:00:00+00');
select pgclaim.create_queue('hk', lease => '1 minute');
select pgclaim_test.keep('known', pgclaim.enqueue('hk', '{}', priority => 2));
select pgclaim_test.keep('lost', pgclaim.enqueue('hk', '{}', priority => 1));
select pgclaim.claim_batch('hk', 'w1', 2);
select pgclaim_test.advance('50 seconds');

select is(
    pgclaim.heartbeat('w1', array[pgclaim_test.id('known')]),
    1,
    'only the lease among ids is extended'
);
select is(
    (pgclaim_test.rec(pgclaim_test.id('lost'))).lease_until,
    '2030-01-01 00:01:00+00'::timestamptz,
    'the record the worker does not know keeps its old lease'
);
select pgclaim_test.advance('20 seconds');
select is(pgclaim.reclaim_orphans(), 1, 'and is taken back when that lease expires');
select results_eq(
    $$
        select pgclaim_test.status(pgclaim_test.id('known'))
        union all select pgclaim_test.status(pgclaim_test.id('lost'))
    $$,
    $$ values ('running'), ('pending') $$,
    'the known record is still held, the other is pending again'
);

select * from finish();
rollback;
