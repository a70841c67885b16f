-- The whole grant matrix: which role may execute which function, and that no
-- role (nor PUBLIC) holds any privilege on the tables or sequences.
begin;
-- three roles for each function and sequence, as many as the catalog holds; three
-- for each table (listed below: a table added and not listed fails the plan) and
-- each of 5 views; 5 more
select plan((
    select 3 * pg_catalog.count(*)::integer + 3 * 5 + 5
    from (
        select p.oid from pg_catalog.pg_proc as p
        where p.pronamespace = 'pgclaim'::regnamespace
        union all
        select c.oid from pg_catalog.pg_class as c
        where c.relnamespace = 'pgclaim'::regnamespace and c.relkind in ('S', 'r')
    ) as o
));

create temp table expected_exec (rolname text, proname text) on commit drop;
insert into expected_exec (rolname, proname)
select
    'pgclaim_producer' as rolname,
    f.f as proname
from
    pg_catalog.unnest(array[
        'schema_version', 'health', 'metrics', 'enqueue', 'enqueue_batch', 'enqueue_items'
    ])
        as f (f)
union all
select
    'pgclaim_worker' as rolname,
    f.f as proname
from
    pg_catalog.unnest(array[
        '_now', '_queue_counts', '_caller', '_admin', '_allowed', '_check_int',
        '_check_interval', 'schema_version', 'health',
        'claim_batch', 'complete', 'fail', 'fail_batch', 'extend_lease',
        'release', 'register_worker', 'heartbeat', 'deregister_worker', 'reclaim_orphans',
        'holds', 'fence_trigger', 'run', 'latency', 'next_eligible', 'metrics', 'dead_letters',
        'tick'
    ]) as f (f)
union all
select
    'pgclaim_admin' as rolname,
    p.proname::text as proname
from pg_catalog.pg_proc as p
where
    p.pronamespace = 'pgclaim'::regnamespace
    and (
        p.proname !~ '^_'
        or p.proname in (
            '_now', '_queue_counts', '_caller', '_admin', '_allowed', '_check_int',
            '_check_interval'
        )
    );

select
    function_privs_are(
        'pgclaim', p.proname,
        array(
            select pg_catalog.format_type(a.t, null)
            from pg_catalog.unnest(p.proargtypes::oid[]) with ordinality as a (t, n)
            order by a.n
        ),
        r.rolname,
        case
            when exists (
                select from expected_exec as e
                where e.rolname = r.rolname and e.proname = p.proname
            ) then array['EXECUTE']
            else '{}'::text[]
        end,
        pg_catalog.format('%s: execute on %s as expected', r.rolname, p.proname)
    )
from pg_catalog.pg_proc as p
cross join
    (values ('pgclaim_producer'), ('pgclaim_worker'), ('pgclaim_admin')) as r (rolname)
where p.pronamespace = 'pgclaim'::regnamespace
order by p.proname, r.rolname;

select is_empty(
    $$
        select p.oid::regprocedure::text from pg_catalog.pg_proc as p,
            lateral pg_catalog.aclexplode(p.proacl) as a
        where p.pronamespace = 'pgclaim'::regnamespace and a.grantee = 0
    $$,
    'PUBLIC may execute no pgclaim function'
);

select
    table_privs_are(
        'pgclaim', t.t, r.rolname, '{}'::text[],
        pg_catalog.format('%s has no privilege on table %s', r.rolname, t.t)
    )
from (
    values
    ('records'), ('finished'), ('queue_totals'), ('queues'), ('workers'), ('config'),
    ('queue_grants'), ('groups'), ('waiting'), ('queue_flow'), ('dedup_keys'), ('schedules')
) as t (t)
cross join
    (values ('pgclaim_producer'), ('pgclaim_worker'), ('pgclaim_admin')) as r (rolname)
order by t.t, r.rolname;

select
    table_privs_are(
        'pgclaim', v.v, r.rolname,
        case
            when r.rolname = 'pgclaim_producer' then '{}'::text[]
            when v.v in ('queue_permissions', 'schedule_status') and r.rolname <> 'pgclaim_admin'
                then '{}'::text[]
            else array['SELECT']
        end,
        pg_catalog.format('%s: select on view %s as expected', r.rolname, v.v)
    )
from (
    values
    ('queue_stats'), ('worker_status'), ('stuck_records'), ('queue_permissions'),
    ('schedule_status')
) as v (v)
cross join
    (values ('pgclaim_producer'), ('pgclaim_worker'), ('pgclaim_admin')) as r (rolname)
order by v.v, r.rolname;

select
    sequence_privs_are(
        'pgclaim', s.s, r.rolname, '{}'::text[],
        pg_catalog.format('%s has no privilege on sequence %s', r.rolname, s.s)
    )
from (
    select c.relname::text from pg_catalog.pg_class as c
    where c.relnamespace = 'pgclaim'::regnamespace and c.relkind = 'S'
) as s (s)
cross join
    (values ('pgclaim_producer'), ('pgclaim_worker'), ('pgclaim_admin')) as r (rolname)
order by s.s, r.rolname;

select
    schema_privs_are(
        'pgclaim', r.rolname, array['USAGE'],
        pg_catalog.format('%s may use schema pgclaim', r.rolname)
    )
from (values ('pgclaim_producer'), ('pgclaim_worker'), ('pgclaim_admin')) as r (rolname);

select is_empty(
    $$
        select c.relname::text from pg_catalog.pg_class as c,
            lateral pg_catalog.aclexplode(c.relacl) as a
        where c.relnamespace = 'pgclaim'::regnamespace and a.grantee = 0
    $$,
    'PUBLIC has no privilege on any pgclaim table, view or sequence'
);

select * from finish();
rollback;
