-- pgclaim_worker may claim and report, heartbeat and reclaim, and read the
-- views; it may not enqueue, manage queues nor reach the tables.
begin;
select plan(27);

select pgclaim.create_queue('pv_work');
select pgclaim.enqueue_batch('pv_work', array['{}', '{}', '{}']::jsonb[]);

set local role pgclaim_worker;
select lives_ok($$ select pgclaim.register_worker('w1') $$, 'worker may register');
select is(
    (select pg_catalog.count(*)::int from pgclaim.claim_batch('pv_work', 'w1', 3)), 3,
    'worker may claim'
);
select is(
    pgclaim.complete('w1', array(select s.id from pgclaim.stuck_records as s)), 0,
    'worker may complete (and read stuck_records)'
);
select lives_ok(
    $$ select pgclaim.extend_lease('w1', array[1::bigint]) $$, 'worker may extend leases'
);
select lives_ok($$ select pgclaim.heartbeat('w1') $$, 'worker may heartbeat');
select lives_ok($$ select pgclaim.release('w1', array[1::bigint]) $$, 'worker may release');
select throws_ok(
    $$ select pgclaim.fail('w2', -1, 'x') $$, 'PC002', null,
    'worker may call fail (and gets PC002 for an unknown record)'
);
select lives_ok($$ select pgclaim.reclaim_orphans() $$, 'worker may reclaim orphans');
select lives_ok($$ select * from pgclaim.queue_stats $$, 'worker may read queue_stats');
select lives_ok($$ select * from pgclaim.worker_status $$, 'worker may read worker_status');
select lives_ok($$ select pgclaim.health() $$, 'worker may read health');
select is(pgclaim.deregister_worker('w1'), 3, 'worker may deregister, releasing what it holds');
select throws_ok(
    $$ select pgclaim.create_queue('pv_other') $$, '42501', null, 'worker may not create queues'
);
select throws_ok(
    $$ select pgclaim.drop_queue('pv_work', true) $$, '42501', null, 'worker may not drop queues'
);
select throws_ok(
    $$ select pgclaim.pause_queue('pv_work') $$, '42501', null, 'worker may not pause queues'
);
select throws_ok(
    $$ select pgclaim.enqueue('pv_work', '{}') $$, '42501', null, 'worker may not enqueue'
);
select throws_ok(
    $$ select pgclaim.retry_failed('pv_work') $$, '42501', null, 'worker may not retry_failed'
);
select throws_ok(
    $$ select pgclaim.cancel(array[1::bigint]) $$, '42501', null, 'worker may not cancel'
);
select throws_ok(
    $$ select pgclaim.purge('pv_work') $$, '42501', null, 'worker may not purge'
);
select throws_ok(
    $$ select pgclaim.configure(sweep_limit => 0) $$, '42501', null, 'worker may not configure'
);
select throws_ok(
    $$ select pgclaim._reclaim(null, 10, true) $$, '42501', null,
    'worker may not call an internal function'
);
select throws_ok(
    $$ select pgclaim._lease_token() $$, '42501', null,
    'worker may not draw lease tokens'
);
select throws_ok(
    $$ select * from pgclaim.records $$, '42501', null, 'worker may not select records'
);
select throws_ok(
    $$ update pgclaim.records set status = 'completed' $$, '42501', null,
    'worker may not update records'
);
select throws_ok(
    $$ select * from pgclaim.queues $$, '42501', null, 'worker may not select queues'
);
select throws_ok(
    $$ delete from pgclaim.workers $$, '42501', null, 'worker may not delete workers'
);
reset role;

select is(
    (
        select pg_catalog.count(*)::int from pgclaim.records as r
        where r.queue = 'pv_work' and r.status = 'pending'
    ),
    3,
    'the released records are pending again'
);

select * from finish();
rollback;
