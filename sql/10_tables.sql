-- pgclaim: tables, indexes and storage settings.
-- New columns go at the end of a table, so that upgrades keep the layout.

create table pgclaim.queues (
    queue text primary key,
    lease interval not null,
    max_attempts integer not null,
    backoff_base interval not null,
    backoff_max interval not null,
    retention interval not null,
    paused boolean not null default false,
    created_at timestamptz not null default now(),
    -- Limits (defaults in create_queue, the one place they are written).
    max_payload_bytes integer not null,
    max_lease interval not null,
    min_priority integer not null,
    max_priority integer not null,
    max_batch integer not null,
    -- true once the queue has per-queue grants (queue_grants): then only the
    -- granted roles (and pgclaim_admin) may use it.
    restricted boolean not null default false,
    -- Flow control. fair: the heads of FIFO groups are handed out in the order
    -- they became heads (groups take turns) rather than by their own due time.
    fair boolean not null default false,
    -- null: no limit. max_running caps the queue's running records; rate (records
    -- per second) and burst size the token bucket of queue_flow that claims draw
    -- from; dedup_window keeps a finished record's dedup_key taken that long.
    max_running integer,
    rate double precision,
    burst integer,
    dedup_window interval
);

comment on table pgclaim.queues is 'One row per queue: its settings and limits.';

-- Unfinished records: pending and running. A record leaves this table in the
-- statement that finishes it (for pgclaim.finished), so every claim, report and
-- sweep works on a table that holds only the work in flight, whatever the history
-- kept. Records are updated at every step of their life here, so leave room on
-- each page for the new row version, and vacuum early and often.
create table pgclaim.records (
    id bigint generated always as identity primary key,
    queue text not null,
    status pgclaim.status not null default 'pending',
    priority integer not null default 0,
    run_at timestamptz not null,
    payload jsonb not null,
    attempt integer not null default 0,
    max_attempts integer not null,
    dedup_key text,
    worker_id text,
    lease_until timestamptz,
    lease_token bigint,
    lease_for interval,
    enqueued_at timestamptz not null,
    -- Always null here since release 0.2.0 (finished records live in
    -- pgclaim.finished); kept so that both tables have the same columns.
    finished_at timestamptz,
    last_error text,
    -- The role the claim was made as (see _caller): reports from another role
    -- leave the record alone. Null for records claimed before release 0.2.0.
    holder_role oid,
    -- The FIFO group the record belongs to (null: none), see pgclaim.groups. A
    -- record waiting behind its group's head is pending with priority -2147483648
    -- (below every queue's min_priority) and run_at 'infinity' (which enqueue
    -- refuses): the claim's index scan stops before it. Its own priority and due
    -- time are in pgclaim.waiting.
    group_key text,
    -- When the record was first claimed and when last (claim_batch): wait time is
    -- enqueued_at to first_claimed_at, run time claimed_at to finished_at
    -- (latency). Null until its first claim, and for records claimed before 0.3.0.
    first_claimed_at timestamptz,
    claimed_at timestamptz,
    constraint records_unfinished check (status in ('pending', 'running'))
) with (
    fillfactor = 70,
    autovacuum_vacuum_scale_factor = 0.02,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_insert_scale_factor = 0.05,
    autovacuum_analyze_scale_factor = 0.02,
    autovacuum_vacuum_cost_delay = 0
);

comment on table pgclaim.records is
'Unfinished records (pending, running) of every queue; reach them through the pgclaim '
'functions only.';

-- claim_batch reads this index in its hand-out order and stops at the batch size.
create index records_claim_idx on pgclaim.records (
    queue, priority desc, run_at, id
) where status = 'pending';

-- Running records: expired leases of a queue (claim_batch sweep, reclaim_orphans)
-- and what a worker holds (heartbeat, deregister_worker). Only records in flight
-- are in it, so a worker's records are found by reading it whole.
create index records_lease_idx on pgclaim.records (queue, lease_until)
where status = 'running';


-- At most one unfinished record per (queue, dedup_key).
create unique index records_dedup_idx on pgclaim.records (queue, dedup_key)
where dedup_key is not null and status in ('pending', 'running');

-- Finished records: completed, failed (dead letters) and cancelled, moved here
-- with the row they had (same columns, same id) by the statement that finished
-- them, kept for the queue's retention. Only inserts and purges touch it.
create table pgclaim.finished (
    id bigint primary key,
    queue text not null,
    status pgclaim.status not null,
    priority integer not null,
    run_at timestamptz not null,
    payload jsonb not null,
    attempt integer not null,
    max_attempts integer not null,
    dedup_key text,
    worker_id text,
    lease_until timestamptz,
    lease_token bigint,
    lease_for interval,
    enqueued_at timestamptz not null,
    finished_at timestamptz not null,
    last_error text,
    holder_role oid,
    group_key text,
    first_claimed_at timestamptz,
    claimed_at timestamptz
) with (
    autovacuum_vacuum_insert_scale_factor = 0.05,
    autovacuum_analyze_scale_factor = 0.02
);

comment on table pgclaim.finished is
'Finished records (completed, failed, cancelled), kept for their queue''s retention.';

-- By age (purge, completed_last_minute, latency, health's rates): a BRIN index
-- costs next to nothing per insert, and records are inserted in the order they finish.
create index finished_at_brin on pgclaim.finished using brin (finished_at)
with (pages_per_range = 32, autosummarize = on);

-- Dead letters and cancelled records, few by nature (queue_stats, retry_failed).
create index finished_dead_idx on pgclaim.finished (queue, status, finished_at)
where status in ('failed', 'cancelled');

-- Completions per queue, kept as counters so that queue_stats does not count the
-- finished table: complete adds to the row of its slot (one of 64, taken by the
-- transaction with pgclaim._slot so that no two open transactions share one),
-- purge and drop_queue take away. A queue's total is the sum of its slots. No
-- foreign key to queues: the reports that add a slot's first row would check it
-- and wait for the queue's row while holding the records they finish, which
-- drop_queue locks after that row (a deadlock); drop_queue deletes the queue's
-- rows itself.
create table pgclaim.queue_totals (
    queue text not null,
    slot smallint not null,
    completed bigint not null default 0,
    -- Counters for metrics (pgclaim.metrics), added by the statements that end an
    -- attempt or finish a record, in the same slot row, never on the claim path.
    -- Unlike completed they only grow: purge and retry_failed leave them alone.
    -- Every attempt handed out ends as exactly one of completions, failures,
    -- reclaims, releases and cancelled_running, or is still running: so the claims
    -- ever made are their sum plus the running records, read in one snapshot.
    completions bigint not null default 0,
    -- attempts reported failed (fail, fail_batch); retries: those among them that
    -- went back to pending
    failures bigint not null default 0,
    retries bigint not null default 0,
    -- expired leases and dead workers' records taken back (_reclaim)
    reclaims bigint not null default 0,
    -- records given back unprocessed (release, deregister_worker)
    releases bigint not null default 0,
    -- records finished as failed (whatever ended their last attempt) and cancelled;
    -- cancelled_running: those cancelled while a worker held them
    dead_letters bigint not null default 0,
    cancellations bigint not null default 0,
    cancelled_running bigint not null default 0,
    primary key (queue, slot)
) with (fillfactor = 50);

comment on table pgclaim.queue_totals is
'Per queue, counters in slots (their sum is the total): completed records kept, and the '
'ever-growing counters that pgclaim.metrics() reports.';

-- FIFO groups with an unfinished record: one row per (queue, group_key) from the
-- enqueue that makes the group's first record its head until the statement that
-- finishes the group's last record. Enqueues that add a record behind the head,
-- and the statement that hands the group on (_promote), hold this row: see
-- _group_join. Its insert is what makes exactly one record the head.
create table pgclaim.groups (
    queue text not null,
    group_key text not null,
    primary key (queue, group_key)
) with (fillfactor = 50);

comment on table pgclaim.groups is
'FIFO groups that have an unfinished record (their head, and those waiting behind it).';

-- The records waiting behind the head of their group, with their own due time
-- (their row in pgclaim.records has run_at 'infinity'), in the order they follow
-- it; _promote moves the first back when the head finishes.
create table pgclaim.waiting (
    id bigint primary key,
    queue text not null,
    group_key text not null,
    priority integer not null,
    run_at timestamptz not null
);

comment on table pgclaim.waiting is
'Records waiting behind the head of their FIFO group, and the time each is due.';

create index waiting_order_idx on pgclaim.waiting (
    queue, group_key, priority desc, run_at, id
);

-- One row per queue with max_running or rate set: claims of such a queue update
-- it first, so they take turns (the running count they read is exact) and draw
-- from its token bucket (tokens at refilled_at; rate per second up to burst).
create table pgclaim.queue_flow (
    queue text primary key,
    tokens double precision not null,
    refilled_at timestamptz not null
) with (fillfactor = 50);

comment on table pgclaim.queue_flow is
'Claim turns and the token bucket of queues with max_running or rate.';

-- The dedup_key of each finished record of a queue with a dedup_window (the
-- newest per key), so that enqueue refuses it within the window.
create table pgclaim.dedup_keys (
    queue text not null,
    dedup_key text not null,
    id bigint not null,
    finished_at timestamptz not null,
    primary key (queue, dedup_key)
);

comment on table pgclaim.dedup_keys is
'dedup_keys of finished records of queues with a dedup_window, and when each finished.';

create table pgclaim.workers (
    worker_id text primary key,
    info jsonb not null default '{}',
    started_at timestamptz not null,
    last_seen timestamptz not null,
    -- The role that registered the worker id; only it (or pgclaim_admin) may
    -- heartbeat or deregister it. Null for workers registered before 0.2.0: the
    -- next role to register or heartbeat the id adopts it.
    owner_role oid
);

comment on table pgclaim.workers is
'Registered workers, the role each runs as, and their last heartbeat.';

create table pgclaim.config (
    singleton boolean primary key default true check (singleton),
    worker_timeout interval not null default '1 minute'
    check (worker_timeout > '0'::interval),
    sweep_limit integer not null default 10 check (sweep_limit >= 0),
    max_ids integer not null default 10000 check (max_ids >= 1),
    max_error_bytes integer not null default 8192 check (max_error_bytes >= 64),
    max_info_bytes integer not null default 8192 check (max_info_bytes >= 2),
    -- Finished records past their queue's retention that each reclaim_orphans
    -- deletes (0: none; purge and a pg_cron job then keep the retention).
    purge_limit integer not null default 1000 check (purge_limit >= 0)
);

comment on table pgclaim.config is
'Cluster-wide settings: worker_timeout (a worker silent that long is dead), '
'sweep_limit (expired leases each claim_batch takes back), max_ids (ids in one call), '
'max_error_bytes (error texts are cut there), max_info_bytes (worker info), '
'purge_limit (expired finished records each reclaim_orphans deletes).';

insert into pgclaim.config default values;

-- Per-queue privileges: a queue with rows here is restricted (queues.restricted)
-- to the roles named (and their members) and pgclaim_admin.
create table pgclaim.queue_grants (
    queue text not null references pgclaim.queues (queue) on delete cascade,
    grantee oid not null,
    privilege text not null check (privilege in ('enqueue', 'claim', 'read')),
    granted_at timestamptz not null,
    primary key (queue, privilege, grantee)
);

-- Lease tokens were drawn from this sequence until release 0.1.0; they are random
-- now (_lease_token). It stays for one release, so that a 0.1.0 claim still
-- running its old body during the upgrade to 0.2.0 finds it.
create sequence pgclaim.lease_token_seq;

comment on sequence pgclaim.lease_token_seq is
'Unused since 0.2.0 (lease tokens are random); kept for claims of 0.1.0 during the upgrade.';

comment on table pgclaim.queue_grants is
'Per-queue privileges (enqueue, claim, read) granted to roles with grant_queue.';

-- The automatic purge of reclaim_orphans (_purge_expired) reads pgclaim.finished a
-- slice of pages at a time: each call draws the next slice from this sequence, so
-- that calls made at once read different slices and never wait on one another.
create sequence pgclaim.purge_slice_seq;

comment on sequence pgclaim.purge_slice_seq is
'The next slice of pgclaim.finished the automatic purge of reclaim_orphans reads.';
-- Periodic schedules: each enqueues one record into its queue at every slot of
-- its cron expression (in its timezone) or every interval, when a tick (tick()
-- or a claim_batch that finds one due) comes at or after the slot. next_slot is
-- the next slot to enqueue; a tick enqueues the latest slot that has come and
-- moves next_slot past now (missed slots are not caught up one by one).
create table pgclaim.schedules (
    name text primary key,
    queue text not null,
    payload jsonb not null,
    priority integer not null,
    max_attempts integer,
    group_key text,
    cron text,
    every interval,
    timezone text not null,
    next_slot timestamptz not null,
    last_slot timestamptz,
    last_id bigint,
    created_at timestamptz not null,
    check ((cron is null) <> (every is null))
);

comment on table pgclaim.schedules is
'Periodic schedules: the record each enqueues (queue, payload, priority, max_attempts, '
'group_key) at the slots of its cron expression (in its timezone) or every interval; '
'the slot last enqueued (and its record), the next slot.';

-- The claim's cheap check (a schedule due?) reads this index.
create index schedules_next_slot_idx on pgclaim.schedules (next_slot);
