-- pgclaim_producer may enqueue (and read health) but neither claim, report,
-- manage queues nor reach the tables.
begin;
select plan(15);

select pgclaim.create_queue('pv_prod');

set local role pgclaim_producer;
select lives_ok($$ select pgclaim.enqueue('pv_prod', '{"n": 1}') $$, 'producer may enqueue');
select lives_ok(
    $$ select pgclaim.enqueue_batch('pv_prod', array['{}', '{}']::jsonb []) $$,
    'producer may enqueue a batch'
);
select lives_ok($$ select pgclaim.health() $$, 'producer may read health');
select lives_ok($$ select pgclaim.schema_version() $$, 'producer may read schema_version');
select throws_ok(
    $$ select pgclaim.claim_batch('pv_prod', 'w1') $$, '42501', null, 'producer may not claim'
);
select throws_ok(
    $$ select pgclaim.complete('w1', array[1::bigint]) $$, '42501', null,
    'producer may not complete'
);
select throws_ok(
    $$ select pgclaim.create_queue('pv_other') $$, '42501', null,
    'producer may not create queues'
);
select throws_ok(
    $$ select pgclaim.cancel(array[1::bigint]) $$, '42501', null, 'producer may not cancel'
);
select throws_ok(
    $$ select * from pgclaim.records $$, '42501', null, 'producer may not select records'
);
select throws_ok(
    $$ update pgclaim.records set priority = 1 $$, '42501', null,
    'producer may not update records'
);
select throws_ok(
    $$ insert into pgclaim.records (queue, run_at, payload, max_attempts, enqueued_at)
        values ('pv_prod', now(), '{}', 1, now()) $$,
    '42501', null, 'producer may not insert records'
);
select throws_ok(
    $$ select * from pgclaim.queues $$, '42501', null, 'producer may not select queues'
);
select throws_ok(
    $$ update pgclaim.queues set paused = true $$, '42501', null, 'producer may not update queues'
);
select throws_ok(
    $$ select * from pgclaim.queue_stats $$, '42501', null, 'producer may not read the views'
);
reset role;

select is(
    (
        select pg_catalog.count(*)::int from pgclaim.records as r
        where r.queue = 'pv_prod'
    ), 3,
    'the producer''s records were added'
);

select * from finish();
rollback;
