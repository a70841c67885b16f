-- The shape of the pgclaim schema: tables, functions, definer rights, the pinned
-- search_path, the owner, comments, and that plpgsql_check finds nothing in any
-- function body.
begin;
select plan(15);

select tables_are(
    'pgclaim',
    array[
        'queues', 'records', 'finished', 'queue_totals', 'workers', 'config', 'queue_grants',
        'groups', 'waiting', 'queue_flow', 'dedup_keys', 'schedules'
    ],
    'pgclaim has exactly its tables'
);

select views_are(
    'pgclaim',
    array['queue_stats', 'worker_status', 'stuck_records', 'queue_permissions', 'schedule_status'],
    'pgclaim has its five views'
);

-- The functions are those of sql/20_internal and sql/30_api, one per file: checked by
-- tests/python/test_api_surface.py against the files, so no list is kept here.

select is_empty(
    $$
        select p.oid::regprocedure::text from pg_catalog.pg_proc as p
        where p.pronamespace = 'pgclaim'::regnamespace
          and p.proname !~ '^_' and not p.prosecdef
          and p.proname not in ('run', 'fence_trigger')
    $$,
    'every public function is security definer, but run and fence_trigger (which run '
    'the caller''s code and writes in the caller''s name)'
);

select is_empty(
    $$
        select p.oid::regprocedure::text from pg_catalog.pg_proc as p
        where p.pronamespace = 'pgclaim'::regnamespace
          and not coalesce('search_path=pg_catalog, pg_temp' = any(p.proconfig), false)
    $$,
    'every function pins search_path to pg_catalog, then pg_temp (never the caller''s)'
);

select is_empty(
    $$
        select p.oid::regprocedure::text from pg_catalog.pg_proc as p
        where p.pronamespace = 'pgclaim'::regnamespace
          and p.proowner <> 'pgclaim_owner'::regrole
        union all
        select c.relname::text from pg_catalog.pg_class as c
        where c.relnamespace = 'pgclaim'::regnamespace
          and c.relowner <> 'pgclaim_owner'::regrole
        union all
        select t.typname::text from pg_catalog.pg_type as t
        where t.typnamespace = 'pgclaim'::regnamespace
          and t.typowner <> 'pgclaim_owner'::regrole
        union all
        select n.nspname::text from pg_catalog.pg_namespace as n
        where n.nspname = 'pgclaim' and n.nspowner <> 'pgclaim_owner'::regrole
    $$,
    'pgclaim_owner owns the schema and every function, table, view, sequence and type'
);

select is(
    (
        select pg_catalog.array_agg(a.rolname::text order by a.rolname::text)
        from pg_catalog.pg_roles as a
        where
            a.rolname like 'pgclaim%'
            and not (
                a.rolcanlogin or a.rolsuper or a.rolcreaterole or a.rolcreatedb
                or a.rolreplication or a.rolbypassrls
            )
            and pg_catalog.shobj_description(a.oid, 'pg_authid')
            = 'pgclaim role (made by the pgclaim installer)'
    ),
    array['pgclaim_admin', 'pgclaim_owner', 'pgclaim_producer', 'pgclaim_worker'],
    'the four roles are NOLOGIN, hold no attribute, and carry the installer''s mark'
);

select ok(
    exists (
        select from pg_catalog.pg_default_acl as d
        where
            d.defaclrole = 'pgclaim_owner'::regrole and d.defaclnamespace = 0
            and d.defaclobjtype = 'f'
            and not exists (
                select from pg_catalog.aclexplode(d.defaclacl) as a
                where a.grantee = 0
            )
    ),
    'functions pgclaim_owner creates later are not executable by PUBLIC (default privileges)'
);

select is_empty(
    $$
        select c.relname::text from pg_catalog.pg_class as c
        where c.relnamespace = 'pgclaim'::regnamespace and c.relkind = 'v'
          and not coalesce('security_barrier=true' = any(c.reloptions), false)
    $$,
    'every view is a security_barrier view'
);

select is_empty(
    $$
        select p.oid::regprocedure::text from pg_catalog.pg_proc as p
        where p.pronamespace = 'pgclaim'::regnamespace
          and p.prosecdef and p.proname ~ '^_'
          and p.proname not in ('_allowed', '_queue_counts')
    $$,
    'only the two internals that views call in their reader''s name are security definer'
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
            -- a trigger function is checked as if on a table (fence_trigger reads
            -- the row through dynamic SQL only)
            lateral plpgsql_check_function_tb(
                p.oid,
                case
                    when p.prorettype = 'trigger'::regtype then 'pgclaim.records'::regclass
                    else 0::oid::regclass
                end
            ) as c
        where p.pronamespace = 'pgclaim'::regnamespace
          and p.prolang = (select l.oid from pg_catalog.pg_language as l where l.lanname = 'plpgsql')
    $$,
    'plpgsql_check reports nothing on any function'
);

select is(
    pgclaim.schema_version(), 3, 'schema_version() is 3'
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
