-- pgclaim: the schema and its types.
--
-- Tables (sql/10_tables.sql)
--   pgclaim.queues   one row per queue: lease, attempts, backoff, retention, paused
--   pgclaim.records  every record of every queue; status drives its lifecycle:
--                    pending -> running -> completed | pending (retry) | failed
--                    pending/running -> cancelled; failed -> pending (retry_failed)
--   pgclaim.workers  registered workers, the role that runs each, last heartbeat
--   pgclaim.config   one row of cluster-wide settings (worker timeout, claim sweep,
--                    limits of the reports)
--   pgclaim.queue_grants  per-queue privileges (enqueue, claim, read) of roles
-- API (sql/30_api/, one function per file), views (sql/40_views/), grants
-- (sql/90_grants.sql). Internals start with an underscore (sql/20_internal/).
-- Roles (sql/00_roles.sql): pgclaim_owner owns everything below; every function
-- is SECURITY DEFINER with search_path = pg_catalog, pg_temp, so a caller's
-- temporary objects and schemas are never resolved inside one.
--
-- The schema must not exist yet: a schema pgclaim that someone else made is not
-- adopted (pgclaim migrate --adopt-existing says otherwise, see docs/install.md).

create schema pgclaim authorization pgclaim_owner;

-- Everything from here on is created by, and owned by, pgclaim_owner.
set local role pgclaim_owner;

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

create type pgclaim.item as (
    payload jsonb,
    priority integer,
    run_at timestamptz,
    dedup_key text,
    group_key text,
    max_attempts integer
);

comment on type pgclaim.item is
'One record of enqueue_items: payload and its own priority, run_at, dedup_key, group_key, '
'max_attempts.';

create type pgclaim.dead_letter as (
    id bigint,
    queue text,
    attempt integer,
    max_attempts integer,
    worker_id text,
    enqueued_at timestamptz,
    finished_at timestamptz,
    last_error text
);

comment on type pgclaim.dead_letter is
'A dead letter as dead_letters shows it: a failed record kept, its last error, no payload.';
