-- health: the jsonb document, ok on a quiet database, degraded with a reason
-- for dead workers, old pending records and old transactions.
-- The clock starts at this transaction's start, so this transaction is not old;
-- other sessions of the server are kept out with a large max_xact_age.
begin;
select plan(15);

select pgclaim_test.set_now(now());
select pgclaim.create_queue('hl');
select pgclaim.enqueue_batch('hl', array['{}', '{}', '{}']::jsonb[]);

select pgclaim_test.keep('h', pgclaim.health(max_xact_age => '100 years')::text);
select is(pgclaim_test.kept('h')::jsonb ->> 'status', 'ok', 'a quiet database is ok');
select is(pgclaim_test.kept('h')::jsonb -> 'reasons', '[]'::jsonb, 'with no reason');
select is(
    array(
        select k.k from pg_catalog.jsonb_object_keys(pgclaim_test.kept('h')::jsonb) as k (k)
        order by 1
    ),
    array[
        'checked_at', 'connections', 'database', 'oldest_xact', 'oldest_xact_age_s', 'problems',
        'queues', 'reachable', 'reasons', 'schema_version', 'server_version', 'status',
        'stuck_records', 'tables', 'workers'
    ],
    'the document has its documented keys'
);
select results_eq(
    $$
        select (h.d ->> 'reachable')::boolean, (h.d ->> 'schema_version')::int,
            h.d ->> 'database' = pg_catalog.current_database(),
            h.d ->> 'server_version' = pg_catalog.current_setting('server_version')
        from (select pgclaim_test.kept('h')::jsonb as d) as h
    $$,
    $$ values (true, pgclaim.schema_version(), true, true) $$,
    'reachable, schema and server versions, database name'
);
select is(
    pgclaim_test.kept('h')::jsonb -> 'queues' -> 'hl' -> 'pending', '3'::jsonb,
    'per-queue counts are reported'
);
select is(
    pgclaim_test.kept('h')::jsonb -> 'workers', '{"alive": 0, "dead": 0}'::jsonb,
    'no worker yet'
);

select pgclaim.register_worker('w_silent');
select pgclaim.claim_batch('hl', 'w_other', 1, lease => '1 minute');
select pgclaim_test.advance('30 seconds');
select is(
    pgclaim.health(max_xact_age => '100 years') ->> 'status', 'ok',
    'still ok within the lease and the worker timeout'
);

select pgclaim_test.advance('2 minutes');
select pgclaim_test.keep(
    'h', pgclaim.health(max_xact_age => '100 years', max_pending_age => '1 day')::text
);
select is(pgclaim_test.kept('h')::jsonb ->> 'status', 'degraded', 'degraded once things go wrong');
select is(
    (
        select pg_catalog.array_agg(p.value ->> 'kind' order by p.n)
        from
            pg_catalog.jsonb_array_elements(pgclaim_test.kept('h')::jsonb -> 'problems')
            with ordinality as p (value, n)
    ),
    array['backlog_growing', 'leases_not_reclaimed', 'dead_workers'],
    'the problems are the backlog nobody drains, the lease nobody took back, the dead worker'
);
select results_eq(
    $$
        select h.d -> 'workers', h.d -> 'stuck_records'
        from (select pgclaim_test.kept('h')::jsonb as d) as h
    $$,
    $$ values ('{"alive": 0, "dead": 1}'::jsonb, '1'::jsonb) $$,
    'workers and stuck_records count them'
);
select ok(
    pgclaim.health(max_xact_age => '100 years', max_pending_age => '1 minute') -> 'reasons'
    ? 'queue hl: oldest pending record has waited 00:02:30',
    'a record pending longer than max_pending_age is a reason'
);
select ok(
    pgclaim.health(max_xact_age => '100 years', max_pending_age => '1 hour') -> 'reasons'
    ? 'queue hl: oldest pending record has waited 00:02:30' is false,
    'not when it waited less than max_pending_age'
);
select ok(
    exists (
        select from
            pg_catalog.jsonb_array_elements_text(
                pgclaim.health(max_xact_age => '1 minute') -> 'reasons'
            ) as r (reason)
        where r.reason like 'a transaction open for % holds back vacuum: pid %'
    ),
    'a transaction open longer than max_xact_age is a reason'
);

select pgclaim.reclaim_orphans();
select pgclaim.deregister_worker('w_silent');
select pgclaim.claim_batch('hl', 'w_other', 3);
select is(
    pgclaim.health(max_xact_age => '100 years') ->> 'status', 'ok',
    'ok again once the orphan is reclaimed, the dead worker gone and the backlog taken'
);
select pgclaim.enqueue('hl', '{}');
select pgclaim.pause_queue('hl');
select is(
    pgclaim.health(max_xact_age => '100 years') -> 'problems' -> 0 ->> 'kind',
    'paused_with_pending',
    'a paused queue with due records is a reason'
);

select * from finish();
rollback;
