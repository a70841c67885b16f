-- pgclaim_admin may do everything through the functions and views, and still
-- cannot reach the tables directly.
begin;
select plan(21);

set local role pgclaim_admin;
select
    lives_ok(
        $$ select pgclaim.create_queue('pv_admin', max_attempts => 1) $$, 'admin may create queues'
    );
select lives_ok(
    $$ select pgclaim.alter_queue('pv_admin', lease => '1 minute') $$, 'admin may alter queues'
);
select lives_ok($$ select pgclaim.pause_queue('pv_admin') $$, 'admin may pause');
select lives_ok($$ select pgclaim.resume_queue('pv_admin') $$, 'admin may resume');
select lives_ok(
    $$ select pgclaim.enqueue_batch('pv_admin', array['{}', '{}', '{}']::jsonb []) $$,
    'admin may enqueue'
);
select is(
    (select pg_catalog.count(*)::int from pgclaim.claim_batch('pv_admin', 'a1', 3)), 3,
    'admin may claim'
);
select is(
    pgclaim.complete('a1', array(select s.id from pgclaim.stuck_records as s)), 0,
    'admin may complete and read stuck_records'
);
select is(
    (
        select s.running from pgclaim.queue_stats as s
        where s.queue = 'pv_admin'
    ), 3::bigint,
    'admin may read queue_stats'
);
select lives_ok($$ select * from pgclaim.worker_status $$, 'admin may read worker_status');
select lives_ok($$ select pgclaim.heartbeat('a1') $$, 'admin may heartbeat');
select lives_ok($$ select pgclaim.reclaim_orphans() $$, 'admin may reclaim orphans');
select lives_ok($$ select pgclaim.configure(sweep_limit => 5) $$, 'admin may configure');
select lives_ok($$ select pgclaim.retry_failed('pv_admin') $$, 'admin may retry_failed');
select lives_ok($$ select pgclaim.purge('pv_admin') $$, 'admin may purge');
select lives_ok($$ select pgclaim.health() $$, 'admin may read health');
select is(pgclaim.deregister_worker('a1'), 3, 'admin may deregister workers');
select is(pgclaim.drop_queue('pv_admin', true), 3, 'admin may drop queues');
select throws_ok(
    $$ select * from pgclaim.records $$, '42501', null, 'admin may not select records'
);
select throws_ok(
    $$ update pgclaim.records set status = 'completed' $$, '42501', null,
    'admin may not update records'
);
select throws_ok(
    $$ select * from pgclaim.queues $$, '42501', null, 'admin may not select queues'
);
select throws_ok(
    $$ update pgclaim.queues set paused = true $$, '42501', null, 'admin may not update queues'
);
reset role;

select * from finish();
rollback;
