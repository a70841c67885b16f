-- The shape of the pgclaim schema: tables, functions, definer rights, comments,
-- and that plpgsql_check finds nothing in any function body.
begin;
select plan(11);

select tables_are(
    'pgclaim', array['queues', 'records', 'workers', 'config'],
    'pgclaim has exactly its four tables'
);

select views_are(
    'pgclaim', array['queue_stats', 'worker_status', 'stuck_records'],
    'pgclaim has its three views'
);

select functions_are(
    'pgclaim',
    array[
        '_now', '_check_text', '_check_ids', '_token_groups', '_wake', '_check_queue_name',
        '_check_interval', '_queue', '_queue_counts', '_backoff', '_reclaim',
        'create_queue', 'alter_queue', 'drop_queue', 'pause_queue', 'resume_queue',
        'enqueue', 'enqueue_batch', 'claim_batch', 'complete', 'fail', 'extend_lease',
        'release', 'register_worker', 'heartbeat', 'deregister_worker', 'reclaim_orphans',
        'retry_failed', 'cancel', 'purge', 'health', 'configure', 'schema_version'
    ],
    'pgclaim has exactly the functions of its API and internals'
);

select is_empty(
    $$
        select p.oid::regprocedure::text from pg_catalog.pg_proc as p
        where p.pronamespace = 'pgclaim'::regnamespace
          and p.proname !~ '^_' and not p.prosecdef
    $$,
    'every public function is security definer'
);

select is_empty(
    $$
        select p.oid::regprocedure::text from pg_catalog.pg_proc as p
        where p.pronamespace = 'pgclaim'::regnamespace
          and not coalesce('search_path=""' = any(p.proconfig), false)
    $$,
    'every function pins search_path to the empty string'
);

select is_empty(
    $$
        select p.oid::regprocedure::text from pg_catalog.pg_proc as p
        where p.pronamespace = 'pgclaim'::regnamespace
          and pg_catalog.obj_description(p.oid, 'pg_proc') is null
    $$,
    'every function has a comment'
);

select is_empty(
    $$
        select c.relname::text from pg_catalog.pg_class as c
        where c.relnamespace = 'pgclaim'::regnamespace and c.relkind in ('r', 'v')
          and pg_catalog.obj_description(c.oid, 'pg_class') is null
    $$,
    'every table and view has a comment'
);

select is_empty(
    $$
        select p.proname || ': ' || c.message
        from pg_catalog.pg_proc as p,
            lateral plpgsql_check_function_tb(p.oid) as c
        where p.pronamespace = 'pgclaim'::regnamespace
          and p.prolang = (select l.oid from pg_catalog.pg_language as l where l.lanname = 'plpgsql')
    $$,
    'plpgsql_check reports nothing on any function'
);

select is(
    pgclaim.schema_version(), 1, 'schema_version() is 1'
);

select enum_has_labels(
    'pgclaim', 'status', array['pending', 'running', 'completed', 'failed', 'cancelled'],
    'status has the five lifecycle states, in order'
);

select is(
    (
        select
            pg_catalog.string_agg(
                a.attname || ' ' || pg_catalog.format_type(a.atttypid, a.atttypmod), ', '
                order by a.attnum
            )
        from pg_catalog.pg_attribute as a
        where a.attrelid = 'pgclaim.claimed'::regclass and a.attnum > 0 and not a.attisdropped
    ),
    'id bigint, queue text, payload jsonb, attempt integer, max_attempts integer, '
    || 'priority integer, enqueued_at timestamp with time zone, '
    || 'run_at timestamp with time zone, lease_until timestamp with time zone, '
    || 'lease_token bigint',
    'claim_batch returns pgclaim.claimed with its documented columns, in order'
);

select * from finish();
rollback;
