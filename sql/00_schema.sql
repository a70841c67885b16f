-- pgclaim: the schema, its types and its roles.
--
-- Tables (sql/10_tables.sql)
--   pgclaim.queues   one row per queue: lease, attempts, backoff, retention, paused
--   pgclaim.records  every record of every queue; status drives its lifecycle:
--                    pending -> running -> completed | pending (retry) | failed
--                    pending/running -> cancelled; failed -> pending (retry_failed)
--   pgclaim.workers  registered workers and their last heartbeat
--   pgclaim.config   one row of cluster-wide settings (worker timeout, claim sweep)
-- API (sql/30_api/, one function per file), views (sql/40_views/), grants
-- (sql/90_grants.sql). Internals start with an underscore (sql/20_internal/).
-- Roles are cluster-wide: they are created here when missing, which needs
-- CREATEROLE; a DBA may create them beforehand instead.

create schema if not exists pgclaim;

comment on schema pgclaim is
'pgclaim: a PostgreSQL-native record queue (claim with SKIP LOCKED, leases, heartbeats).';

create type pgclaim.status as enum (
    'pending', 'running', 'completed', 'failed', 'cancelled'
);

comment on type pgclaim.status is
'Lifecycle state of a record: pending, running, completed, failed, cancelled.';

create type pgclaim.claimed as (
    id bigint,
    queue text,
    payload jsonb,
    attempt integer,
    max_attempts integer,
    priority integer,
    enqueued_at timestamptz,
    run_at timestamptz,
    lease_until timestamptz,
    lease_token bigint
);

comment on type pgclaim.claimed is
'A record handed out by claim_batch; lease_token fences reports to this claim.';

do $do$
begin
    if not exists (select from pg_catalog.pg_roles where rolname = 'pgclaim_producer') then
        create role pgclaim_producer nologin;
    end if;
    if not exists (select from pg_catalog.pg_roles where rolname = 'pgclaim_worker') then
        create role pgclaim_worker nologin;
    end if;
    if not exists (select from pg_catalog.pg_roles where rolname = 'pgclaim_admin') then
        create role pgclaim_admin nologin;
    end if;
end
$do$;
