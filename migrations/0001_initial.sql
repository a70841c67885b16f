-- Generated from sql/ by scripts/build_migration.py: installs pgclaim.
-- Frozen once released: later changes go into new migrations.

-- ---- sql/00_schema.sql ----
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

-- ---- sql/10_tables.sql ----
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
    created_at timestamptz not null default now()
);

comment on table pgclaim.queues is 'One row per queue and its settings.';

-- Records are updated at every step of their life, so leave room on each page
-- for the new row version, and vacuum early and often.
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
    finished_at timestamptz,
    last_error text
) with (
    fillfactor = 70,
    autovacuum_vacuum_scale_factor = 0.02,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_insert_scale_factor = 0.05,
    autovacuum_analyze_scale_factor = 0.02,
    autovacuum_vacuum_cost_delay = 0
);

comment on table pgclaim.records is
'Every record of every queue; reach it through the pgclaim functions only.';

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

-- Finished records by age (purge, completed_last_minute): a BRIN index costs
-- next to nothing per completion, and records finish roughly in table order.
create index records_finished_brin on pgclaim.records using brin (finished_at)
with (pages_per_range = 32, autosummarize = on);

-- Dead letters and cancelled records, few by nature (queue_stats, retry_failed).
create index records_dead_idx on pgclaim.records (queue, status, finished_at)
where status in ('failed', 'cancelled');

create table pgclaim.workers (
    worker_id text primary key,
    info jsonb not null default '{}',
    started_at timestamptz not null,
    last_seen timestamptz not null
);

comment on table pgclaim.workers is 'Registered workers and their last heartbeat.';

create table pgclaim.config (
    singleton boolean primary key default true check (singleton),
    worker_timeout interval not null default '1 minute'
    check (worker_timeout > '0'::interval),
    sweep_limit integer not null default 10 check (sweep_limit >= 0)
);

comment on table pgclaim.config is
'Cluster-wide settings: worker_timeout (a worker silent that long is dead), '
'sweep_limit (expired leases each claim_batch takes back).';

insert into pgclaim.config default values;

create sequence pgclaim.lease_token_seq;

comment on sequence pgclaim.lease_token_seq is
'Lease tokens: each claim_batch call draws one, so a report can name its claim.';

-- ---- sql/20_internal/pgclaim._backoff.sql ----
-- pgclaim._backoff(base, cap, attempt): the delay before the next attempt.
-- Returns: least(cap, base * 2^(attempt-1)) scaled by a random factor in
-- [0.5, 1.0] ("equal jitter"), so failing records do not retry in lock step.
-- Computed in seconds, so that a large base or attempt is capped instead of
-- overflowing the interval type. Raises: nothing. Tables: none.
create or replace function pgclaim._backoff(
    base interval, cap interval, attempt integer
)
returns interval
language sql
volatile
set search_path = ''
as $fn$
    select pg_catalog.make_interval(secs => least(
        extract(epoch from cap),
        extract(epoch from base) * pg_catalog.power(2, least(greatest(attempt - 1, 0), 30))
    ) * (0.5 + pg_catalog.random() / 2));
$fn$;

comment on function pgclaim._backoff(interval, interval, integer) is
'Internal: capped exponential backoff with equal jitter.';

-- ---- sql/20_internal/pgclaim._check_ids.sql ----
-- pgclaim._check_ids(ids, lease_tokens): validates the arrays of a report.
-- Returns: nothing.
-- Raises: 22004 when ids is null; 22023 when lease_tokens is given with another
-- length than ids (each token fences the id at the same position). Tables: none.
create or replace function pgclaim._check_ids(ids bigint[], lease_tokens bigint[])
returns void
language plpgsql
immutable
set search_path = ''
as $fn$
begin
    if ids is null then
        raise exception using errcode = '22004', message = 'pgclaim: ids must not be null';
    end if;
    if lease_tokens is not null
       and pg_catalog.cardinality(lease_tokens) <> pg_catalog.cardinality(ids) then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format(
                'pgclaim: lease_tokens has %s elements but ids has %s',
                pg_catalog.cardinality(lease_tokens), pg_catalog.cardinality(ids)),
            hint = 'Pass one lease token per id, in the same order, or none.';
    end if;
end;
$fn$;

comment on function pgclaim._check_ids(bigint[], bigint[]) is
'Internal: raises 22004 for null ids, 22023 when lease_tokens and ids differ in length.';

-- ---- sql/20_internal/pgclaim._check_interval.sql ----
-- pgclaim._check_interval(arg_name, value, allow_null): validates a duration.
-- Returns: nothing.
-- Raises: 22004 when null and not allowed, 22023 when zero or negative.
-- Tables: none.
create or replace function pgclaim._check_interval(
    arg_name text, value interval, allow_null boolean default true
)
returns void
language plpgsql
immutable
set search_path = ''
as $fn$
begin
    if value is null then
        if allow_null then
            return;
        end if;
        raise exception using
            errcode = '22004',
            message = pg_catalog.format('pgclaim: %s must not be null', arg_name);
    end if;
    if value <= '0'::interval then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format(
                'pgclaim: %s must be positive, got %L', arg_name, value::text);
    end if;
end;
$fn$;

comment on function pgclaim._check_interval(text, interval, boolean) is
'Internal: raises 22004/22023 unless value is a positive interval.';

-- ---- sql/20_internal/pgclaim._check_queue_name.sql ----
-- pgclaim._check_queue_name(queue): validates a queue name.
-- Returns: nothing.
-- Raises: 22004 when null, 22023 unless it matches ^[A-Za-z0-9_.:-]{1,48}$
-- (the name becomes part of the NOTIFY channel pgclaim_<queue>). Tables: none.
create or replace function pgclaim._check_queue_name(queue text)
returns void
language plpgsql
immutable
set search_path = ''
as $fn$
begin
    if queue is null then
        raise exception using
            errcode = '22004',
            message = 'pgclaim: queue must not be null';
    end if;
    if queue !~ '^[A-Za-z0-9_.:-]{1,48}$' then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format('pgclaim: invalid queue name %L', queue),
            hint = 'A queue name is 1 to 48 characters from A-Z a-z 0-9 _ . : -';
    end if;
end;
$fn$;

comment on function pgclaim._check_queue_name(text) is
'Internal: raises 22004/22023 unless queue is a valid queue name.';

-- ---- sql/20_internal/pgclaim._check_text.sql ----
-- pgclaim._check_text(name, value, max_len): validates a required name argument.
-- Returns: nothing.
-- Raises: 22004 when value is null, 22023 when empty, too long or not printable.
-- Tables: none.
create or replace function pgclaim._check_text(
    arg_name text, value text, max_len integer default 200
)
returns void
language plpgsql
immutable
set search_path = ''
as $fn$
begin
    if value is null then
        raise exception using
            errcode = '22004',
            message = pg_catalog.format('pgclaim: %s must not be null', arg_name);
    end if;
    if value = '' or pg_catalog.length(value) > max_len or value ~ '[[:cntrl:]]' then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format('pgclaim: invalid %s %L', arg_name, value),
            hint = pg_catalog.format(
                '%s must be 1 to %s printable characters', arg_name, max_len);
    end if;
end;
$fn$;

comment on function pgclaim._check_text(text, text, integer) is
'Internal: raises 22004/22023 unless value is a non-empty printable name.';

-- ---- sql/20_internal/pgclaim._now.sql ----
-- pgclaim._now(): the one clock every pgclaim function reads.
-- Returns: clock_timestamp(), so long transactions still see real lease expiry.
-- Raises: nothing. Tables: none.
-- Tests replace this function inside their own transaction to move time.
create or replace function pgclaim._now()
returns timestamptz
language sql
volatile
set search_path = ''
as $fn$
    select pg_catalog.clock_timestamp();
$fn$;

comment on function pgclaim._now() is
'Internal: the clock of pgclaim (clock_timestamp); tests replace it.';

-- ---- sql/20_internal/pgclaim._queue.sql ----
-- pgclaim._queue(queue, key_share): the settings row of an existing queue.
-- Returns: pgclaim.queues; with key_share the row is locked FOR KEY SHARE, so
-- drop_queue waits for the caller's transaction (enqueue uses it).
-- Raises: 22004/22023 for a bad name, PC001 when the queue does not exist.
-- Tables: queues (read).
create or replace function pgclaim._queue(queue text, key_share boolean default false)
returns pgclaim.queues
language plpgsql
volatile
set search_path = ''
as $fn$
declare
    v_q pgclaim.queues;
begin
    perform pgclaim._check_queue_name(_queue.queue);
    if key_share then
        select q.* into v_q from pgclaim.queues as q
        where q.queue = _queue.queue for key share;
    else
        select q.* into v_q from pgclaim.queues as q
        where q.queue = _queue.queue;
    end if;
    if not found then
        raise exception using
            errcode = 'PC001',
            message = pg_catalog.format('pgclaim: unknown queue %L', _queue.queue),
            hint = 'Create it with pgclaim.create_queue(queue => ...).';
    end if;
    return v_q;
end;
$fn$;

comment on function pgclaim._queue(text, boolean) is
'Internal: the settings of an existing queue; raises PC001 when unknown.';

-- ---- sql/20_internal/pgclaim._queue_counts.sql ----
-- pgclaim._queue_counts(with_completed): the per-queue counts that queue_stats
-- shows and health() reports, defined once. Every count but the completed total
-- reads a partial index (pending: records_claim_idx, running: records_lease_idx,
-- failed and cancelled: records_dead_idx, completed in the last minute:
-- records_finished_brin); the completed total needs one pass over the table, so
-- it is counted only with with_completed (else it is null).
-- Security definer: the view queue_stats calls it in its reader's name, and
-- its readers do not reach the tables.
-- Returns: one row per queue, in queue order. Raises: nothing.
-- Tables: queues, records (read).
create or replace function pgclaim._queue_counts(with_completed boolean)
returns table (
    queue text,
    paused boolean,
    pending bigint,
    scheduled bigint,
    running bigint,
    completed bigint,
    failed bigint,
    cancelled bigint,
    oldest_pending_age interval,
    completed_last_minute bigint
)
language sql
stable
security definer
set search_path = ''
as $fn$
    with
    clock as (
        select pgclaim._now() as now
    ),

    completed as (
        select r.queue, pg_catalog.count(*) as n
        from pgclaim.records as r
        where _queue_counts.with_completed and r.status = 'completed'
        group by r.queue
    )

    select
        q.queue,
        q.paused,
        p.pending,
        p.scheduled,
        ru.running,
        case when _queue_counts.with_completed then coalesce(c.n, 0) end,
        d.failed,
        d.cancelled,
        p.oldest_pending_age,
        l.completed_last_minute
    from pgclaim.queues as q
    cross join clock
    cross join lateral (
        select
            pg_catalog.count(*) filter (where r.run_at <= clock.now) as pending,
            pg_catalog.count(*) filter (where r.run_at > clock.now) as scheduled,
            clock.now - pg_catalog.min(r.run_at) filter (
                where r.run_at <= clock.now
            ) as oldest_pending_age
        from pgclaim.records as r
        where r.queue = q.queue and r.status = 'pending'
    ) as p
    cross join lateral (
        select pg_catalog.count(*) as running
        from pgclaim.records as r
        where r.queue = q.queue and r.status = 'running'
    ) as ru
    cross join lateral (
        select
            pg_catalog.count(*) filter (where r.status = 'failed') as failed,
            pg_catalog.count(*) filter (where r.status = 'cancelled') as cancelled
        from pgclaim.records as r
        where r.queue = q.queue and r.status in ('failed', 'cancelled')
    ) as d
    cross join lateral (
        select pg_catalog.count(*) as completed_last_minute
        from pgclaim.records as r
        where
            r.queue = q.queue and r.status = 'completed'
            and r.finished_at > clock.now - '1 minute'::interval
    ) as l
    left join completed as c on q.queue = c.queue
    order by q.queue;
$fn$;

comment on function pgclaim._queue_counts(boolean) is
'Internal: per-queue counts for queue_stats and health(); the completed total only '
'with with_completed.';

-- ---- sql/20_internal/pgclaim._reclaim.sql ----
-- pgclaim._reclaim(queue, max_records): takes back running records whose lease
-- expired (of one queue, or of all when queue is null) and, with dead_workers,
-- those held by registered workers silent for longer than config.worker_timeout.
-- Returns: how many records it took back (to pending, or failed when out of attempts).
-- Raises: nothing. Tables: records (update), workers and config (read).
-- Rows locked by others are skipped, so any number of callers may run at once.
create or replace function pgclaim._reclaim(
    queue text, max_records integer, dead_workers boolean
)
returns integer
language plpgsql
volatile
set search_path = ''
as $fn$
declare
    v_now timestamptz := pgclaim._now();
    v_timeout interval;
    v_count integer := 0;
    v_more integer;
begin
    if max_records <= 0 then
        return 0;
    end if;
    if dead_workers then
        select c.worker_timeout into v_timeout from pgclaim.config as c;
        with dead as materialized (
            select r.id from pgclaim.records as r
            where r.status = 'running'
              and r.worker_id in (
                  select w.worker_id from pgclaim.workers as w
                  where w.last_seen < v_now - v_timeout
              )
              and (_reclaim.queue is null or r.queue = _reclaim.queue)
            limit max_records
            for update skip locked
        )
        update pgclaim.records as r set
            status = case when r.attempt >= r.max_attempts
                then 'failed'::pgclaim.status else 'pending'::pgclaim.status end,
            finished_at = case when r.attempt >= r.max_attempts then v_now end,
            last_error = pg_catalog.format('worker %s stopped heartbeating', r.worker_id),
            worker_id = null, lease_until = null, lease_token = null, lease_for = null
        from dead where r.id = dead.id;
        get diagnostics v_count = row_count;
    end if;
    with expired as materialized (
        select r.id from pgclaim.records as r
        where r.status = 'running'
          and r.lease_until < v_now
          and (_reclaim.queue is null or r.queue = _reclaim.queue)
        order by r.lease_until
        limit max_records - v_count
        for update skip locked
    )
    update pgclaim.records as r set
        status = case when r.attempt >= r.max_attempts
            then 'failed'::pgclaim.status else 'pending'::pgclaim.status end,
        finished_at = case when r.attempt >= r.max_attempts then v_now end,
        last_error = pg_catalog.format('lease of worker %s expired', r.worker_id),
        worker_id = null, lease_until = null, lease_token = null, lease_for = null
    from expired where r.id = expired.id;
    get diagnostics v_more = row_count;
    return v_count + v_more;
end;
$fn$;

comment on function pgclaim._reclaim(text, integer, boolean) is
'Internal: takes back expired leases (and dead workers'' records), bounded, skip locked.';

-- ---- sql/20_internal/pgclaim._token_groups.sql ----
-- pgclaim._token_groups(ids, lease_tokens): the ids of a report grouped by the
-- lease token each must be held under (one group with a null token when no
-- tokens are given). A claim gives one token to its whole batch, so a report
-- usually makes one group: the reports then touch each group with one
-- `id = any(...)` primary-key scan, which locks rows in id order whatever the
-- planner's statistics say.
-- Returns: setof (token bigint, ids bigint[]). Raises: nothing. Tables: none.
create or replace function pgclaim._token_groups(ids bigint[], lease_tokens bigint[])
returns table (token bigint, ids bigint[])
language sql
immutable
set search_path = ''
as $fn$
    select null::bigint, _token_groups.ids
    where _token_groups.lease_tokens is null
    union all
    select t.token, pg_catalog.array_agg(t.id order by t.id)
    from rows from (
        pg_catalog.unnest(_token_groups.ids), pg_catalog.unnest(_token_groups.lease_tokens)
    ) as t (id, token)
    where _token_groups.lease_tokens is not null
    group by t.token;
$fn$;

comment on function pgclaim._token_groups(bigint[], bigint[]) is
'Internal: the ids of a report grouped by the lease token they must be held under.';

-- ---- sql/20_internal/pgclaim._wake.sql ----
-- pgclaim._wake(queue, as_of): notifies channel pgclaim_<queue> after an enqueue,
-- unless the head of the queue (the record the next claim takes) has already
-- waited 100 ms: then the workers are busy draining a backlog and will reach the
-- new records without a wake-up. Skipping those notifications matters because
-- PostgreSQL serialises the commits of notifying transactions.
-- Returns: whether it notified. Raises: nothing. Tables: records (read).
create or replace function pgclaim._wake(queue text, as_of timestamptz)
returns boolean
language plpgsql
volatile
set search_path = ''
as $fn$
declare
    v_head timestamptz;
begin
    select r.run_at into v_head from pgclaim.records as r
    where r.queue = _wake.queue and r.status = 'pending' and r.run_at <= _wake.as_of
    order by r.priority desc, r.run_at, r.id
    limit 1;
    if v_head < _wake.as_of - '100 milliseconds'::interval then
        return false;
    end if;
    perform pg_catalog.pg_notify('pgclaim_' || _wake.queue, '');
    return true;
end;
$fn$;

comment on function pgclaim._wake(text, timestamptz) is
'Internal: notifies pgclaim_<queue> unless the queue''s head has waited 100 ms (a backlog).';

-- ---- sql/30_api/pgclaim.alter_queue.sql ----
-- pgclaim.alter_queue(queue, lease, max_attempts, backoff_base, backoff_max, retention)
-- Changes the settings given (null leaves a setting alone). Records already
-- enqueued keep their max_attempts; running records keep their lease.
-- Returns: nothing. Raises: PC001 unknown queue, 22004/22023 bad input.
-- Tables: queues (update).
create or replace function pgclaim.alter_queue(
    queue text,
    lease interval default null,
    max_attempts integer default null,
    backoff_base interval default null,
    backoff_max interval default null,
    retention interval default null
)
returns void
language plpgsql
volatile
security definer
set search_path = ''
as $fn$
begin
    perform pgclaim._queue(alter_queue.queue);
    perform pgclaim._check_interval('lease', alter_queue.lease);
    perform pgclaim._check_interval('backoff_base', alter_queue.backoff_base);
    perform pgclaim._check_interval('backoff_max', alter_queue.backoff_max);
    perform pgclaim._check_interval('retention', alter_queue.retention);
    if alter_queue.max_attempts < 1 then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format(
                'pgclaim: max_attempts must be at least 1, got %s', alter_queue.max_attempts);
    end if;
    update pgclaim.queues as q set
        lease = coalesce(alter_queue.lease, q.lease),
        max_attempts = coalesce(alter_queue.max_attempts, q.max_attempts),
        backoff_base = coalesce(alter_queue.backoff_base, q.backoff_base),
        backoff_max = coalesce(alter_queue.backoff_max, q.backoff_max),
        retention = coalesce(alter_queue.retention, q.retention)
    where q.queue = alter_queue.queue;
end;
$fn$;

comment on function pgclaim.alter_queue(text, interval, integer, interval, interval, interval) is
'Changes the given settings of a queue (null leaves one alone). '
'Raises PC001 for an unknown queue, 22023 for a bad setting.';

-- ---- sql/30_api/pgclaim.cancel.sql ----
-- pgclaim.cancel(ids): pending or running records among ids become cancelled;
-- a running record's holder then finds its reports refused.
-- Returns: how many it cancelled; finished or unknown ids are skipped.
-- Raises: 22004 null ids. Tables: records (update).
create or replace function pgclaim.cancel(ids bigint[])
returns integer
language plpgsql
volatile
security definer
set search_path = ''
as $fn$
declare
    v_count integer;
begin
    if cancel.ids is null then
        raise exception using errcode = '22004', message = 'pgclaim: ids must not be null';
    end if;
    update pgclaim.records as r set
        status = 'cancelled', finished_at = pgclaim._now(), lease_until = null
    where r.id = any(cancel.ids) and r.status in ('pending', 'running');
    get diagnostics v_count = row_count;
    return v_count;
end;
$fn$;

comment on function pgclaim.cancel(bigint[]) is
'Cancels the pending or running records among ids; returns how many.';

-- ---- sql/30_api/pgclaim.claim_batch.sql ----
-- pgclaim.claim_batch(queue, worker_id, batch_size, lease)
-- Takes back up to config.sweep_limit expired leases of the queue, then hands
-- out at most batch_size due pending records in (priority desc, run_at, id)
-- order, skipping rows other claimers hold: each is marked running, held by
-- worker_id until lease_until, its attempt counted, under a new lease_token.
-- A paused queue hands out nothing.
-- Returns: setof pgclaim.claimed, in hand-out order.
-- Raises: PC001 unknown queue; 22004 null worker_id; 22023 batch_size outside
-- 1..10000, lease not positive. Tables: queues, config (read), records (update).
create or replace function pgclaim.claim_batch(
    queue text,
    worker_id text,
    batch_size integer default 100,
    lease interval default null
)
returns setof pgclaim.claimed
language plpgsql
volatile
security definer
set search_path = ''
as $fn$
declare
    v_q pgclaim.queues;
    v_now timestamptz;
    v_lease interval;
    v_token bigint;
    v_sweep integer;
begin
    v_q := pgclaim._queue(claim_batch.queue);
    perform pgclaim._check_text('worker_id', claim_batch.worker_id);
    if claim_batch.batch_size is null
       or claim_batch.batch_size < 1 or claim_batch.batch_size > 10000 then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format(
                'pgclaim: batch_size must be between 1 and 10000, got %s',
                coalesce(claim_batch.batch_size::text, 'null'));
    end if;
    perform pgclaim._check_interval('lease', claim_batch.lease);
    if v_q.paused then
        return;
    end if;

    select c.sweep_limit into v_sweep from pgclaim.config as c;
    perform pgclaim._reclaim(claim_batch.queue, v_sweep, false);

    v_now := pgclaim._now();
    v_lease := coalesce(claim_batch.lease, v_q.lease);
    v_token := pg_catalog.nextval('pgclaim.lease_token_seq');

    -- Lock inside a materialized CTE: the LIMIT is applied once, never re-run.
    return query
    with picked as materialized (
        select r.id from pgclaim.records as r
        where r.queue = claim_batch.queue
          and r.status = 'pending'
          and r.run_at <= v_now
        order by r.priority desc, r.run_at, r.id
        limit claim_batch.batch_size
        for update skip locked
    ),
    claimed as (
        update pgclaim.records as r set
            status = 'running',
            worker_id = claim_batch.worker_id,
            attempt = r.attempt + 1,
            lease_until = v_now + v_lease,
            lease_token = v_token,
            lease_for = v_lease
        from picked
        where r.id = picked.id
        returning r.id, r.queue, r.payload, r.attempt, r.max_attempts, r.priority,
            r.enqueued_at, r.run_at, r.lease_until, r.lease_token
    )
    select c.id, c.queue, c.payload, c.attempt, c.max_attempts, c.priority,
        c.enqueued_at, c.run_at, c.lease_until, c.lease_token
    from claimed as c
    order by c.priority desc, c.run_at, c.id;
end;
$fn$;

comment on function pgclaim.claim_batch(text, text, integer, interval) is
'Claims up to batch_size (1..10000) due records of a queue for worker_id under a lease, '
'in (priority desc, run_at, id) order, with FOR UPDATE SKIP LOCKED; first takes back a '
'few expired leases. Raises PC001, 22004, 22023.';

-- ---- sql/30_api/pgclaim.complete.sql ----
-- pgclaim.complete(worker_id, ids, lease_tokens)
-- Marks completed the records among ids that worker_id holds now (and, where
-- lease_tokens is given, position by position, under that very claim).
-- Returns: how many records it completed; ids it may not touch are skipped.
-- Raises: 22004 null worker_id or ids; 22023 lease_tokens not matching ids.
-- Tables: records (update).
create or replace function pgclaim.complete(
    worker_id text, ids bigint[], lease_tokens bigint[] default null
)
returns integer
language plpgsql
volatile
security definer
set search_path = ''
as $fn$
declare
    v_now timestamptz := pgclaim._now();
    v_count integer := 0;
    v_n integer;
    v_group record;
begin
    perform pgclaim._check_text('worker_id', complete.worker_id);
    perform pgclaim._check_ids(complete.ids, complete.lease_tokens);
    for v_group in
        select g.token, g.ids
        from pgclaim._token_groups(complete.ids, complete.lease_tokens) as g
    loop
        update pgclaim.records as r set
            status = 'completed',
            finished_at = v_now,
            lease_until = null
        where r.id = any(v_group.ids)
          -- status compared as text: the planner must not read the partial index of
          -- running records whole; it looks the ids up by primary key, in id order
          and r.status::text = 'running'
          and r.worker_id = complete.worker_id
          and (v_group.token is null or r.lease_token = v_group.token);
        get diagnostics v_n = row_count;
        v_count := v_count + v_n;
    end loop;
    return v_count;
end;
$fn$;

comment on function pgclaim.complete(text, bigint[], bigint[]) is
'Completes the records among ids that worker_id holds (under the given lease_tokens, '
'when passed); returns how many it completed and skips the rest.';

-- ---- sql/30_api/pgclaim.configure.sql ----
-- pgclaim.configure(worker_timeout, sweep_limit): changes the cluster-wide
-- settings given (null leaves one alone).
-- Returns: nothing. Raises: 22023 worker_timeout not positive or sweep_limit < 0.
-- Tables: config (update).
create or replace function pgclaim.configure(
    worker_timeout interval default null, sweep_limit integer default null
)
returns void
language plpgsql
volatile
security definer
set search_path = ''
as $fn$
begin
    perform pgclaim._check_interval('worker_timeout', configure.worker_timeout);
    if configure.sweep_limit < 0 then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format(
                'pgclaim: sweep_limit must not be negative, got %s', configure.sweep_limit);
    end if;
    update pgclaim.config as c set
        worker_timeout = coalesce(configure.worker_timeout, c.worker_timeout),
        sweep_limit = coalesce(configure.sweep_limit, c.sweep_limit);
end;
$fn$;

comment on function pgclaim.configure(interval, integer) is
'Sets worker_timeout (a worker silent that long is dead) and sweep_limit (expired '
'leases each claim_batch takes back). Raises 22023.';

-- ---- sql/30_api/pgclaim.create_queue.sql ----
-- pgclaim.create_queue(queue, lease, max_attempts, backoff_base, backoff_max, retention)
-- Creates a queue; idempotent: the settings of an existing queue are left alone.
-- Returns: nothing. Raises: 22004/22023 for a bad name or setting.
-- Tables: queues (insert).
create or replace function pgclaim.create_queue(
    queue text,
    lease interval default '5 minutes',
    max_attempts integer default 5,
    backoff_base interval default '10 seconds',
    backoff_max interval default '1 hour',
    retention interval default '7 days'
)
returns void
language plpgsql
volatile
security definer
set search_path = ''
as $fn$
begin
    perform pgclaim._check_queue_name(create_queue.queue);
    perform pgclaim._check_interval('lease', create_queue.lease, false);
    perform pgclaim._check_interval('backoff_base', create_queue.backoff_base, false);
    perform pgclaim._check_interval('backoff_max', create_queue.backoff_max, false);
    perform pgclaim._check_interval('retention', create_queue.retention, false);
    if create_queue.max_attempts is null or create_queue.max_attempts < 1 then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format(
                'pgclaim: max_attempts must be at least 1, got %s',
                coalesce(create_queue.max_attempts::text, 'null'));
    end if;
    insert into pgclaim.queues as q (
        queue, lease, max_attempts, backoff_base, backoff_max, retention
    ) values (
        create_queue.queue, create_queue.lease, create_queue.max_attempts,
        create_queue.backoff_base, create_queue.backoff_max, create_queue.retention
    ) on conflict on constraint queues_pkey do nothing;
end;
$fn$;

comment on function pgclaim.create_queue(text, interval, integer, interval, interval, interval) is
'Creates a queue with its lease, max_attempts, backoff_base, backoff_max and retention; '
'idempotent (an existing queue keeps its settings). Raises 22004/22023 on bad input.';

-- ---- sql/30_api/pgclaim.deregister_worker.sql ----
-- pgclaim.deregister_worker(worker_id): releases every record the worker holds
-- (attempt not counted) and removes it from the workers table.
-- Returns: how many records it released. Raises: 22004/22023 bad worker_id.
-- Tables: records (update), workers (delete).
create or replace function pgclaim.deregister_worker(worker_id text)
returns integer
language plpgsql
volatile
security definer
set search_path = ''
as $fn$
declare
    v_count integer;
    v_queues text [];
begin
    perform pgclaim._check_text('worker_id', deregister_worker.worker_id);
    with held as (
        update pgclaim.records as r set
            status = 'pending',
            attempt = r.attempt - 1,
            worker_id = null, lease_until = null, lease_token = null, lease_for = null
        where r.worker_id = deregister_worker.worker_id and r.status = 'running'
        returning r.queue
    )
    select pg_catalog.count(*)::integer, pg_catalog.array_agg(distinct held.queue)
    into v_count, v_queues
    from held;
    if v_count > 0 then
        perform pg_catalog.pg_notify('pgclaim_' || q.queue, '')
        from pg_catalog.unnest(v_queues) as q (queue);
    end if;
    delete from pgclaim.workers as w where w.worker_id = deregister_worker.worker_id;
    return v_count;
end;
$fn$;

comment on function pgclaim.deregister_worker(text) is
'Releases every record worker_id holds (attempt not counted) and forgets the worker; '
'returns how many records it released.';

-- ---- sql/30_api/pgclaim.drop_queue.sql ----
-- pgclaim.drop_queue(queue, force): removes a queue and its records.
-- Waits for transactions enqueueing into the queue to finish.
-- Returns: how many records were deleted.
-- Raises: PC001 unknown queue; PC004 when unfinished records remain and force is false.
-- Tables: queues (delete), records (delete).
create or replace function pgclaim.drop_queue(queue text, force boolean default false)
returns integer
language plpgsql
volatile
security definer
set search_path = ''
as $fn$
declare
    v_unfinished bigint;
    v_count integer;
begin
    perform pgclaim._queue(drop_queue.queue);
    perform 1 from pgclaim.queues as q where q.queue = drop_queue.queue for update;
    if not coalesce(drop_queue.force, false) then
        select pg_catalog.count(*) into v_unfinished from pgclaim.records as r
        where r.queue = drop_queue.queue and r.status in ('pending', 'running');
        if v_unfinished > 0 then
            raise exception using
                errcode = 'PC004',
                message = pg_catalog.format(
                    'pgclaim: queue %L still has %s unfinished records',
                    drop_queue.queue, v_unfinished),
                hint = 'Drain or cancel them first, or pass force => true.';
        end if;
    end if;
    delete from pgclaim.records as r where r.queue = drop_queue.queue;
    get diagnostics v_count = row_count;
    delete from pgclaim.queues as q where q.queue = drop_queue.queue;
    return v_count;
end;
$fn$;

comment on function pgclaim.drop_queue(text, boolean) is
'Drops a queue and all its records; returns how many records were deleted. '
'Raises PC001 unknown queue, PC004 when unfinished records remain and force is false.';

-- ---- sql/30_api/pgclaim.enqueue.sql ----
-- pgclaim.enqueue(queue, payload, priority, run_at, dedup_key, max_attempts)
-- Adds one record. With a dedup_key that an unfinished (pending or running)
-- record of the queue already has, adds nothing and returns that record's id.
-- Notifies channel pgclaim_<queue> when the record is due now, unless the queue
-- has a backlog its workers are draining (see _wake); PostgreSQL folds repeated
-- notifications of one transaction into one.
-- Returns: the record's id.
-- Raises: PC001 unknown queue; 22004 null payload or priority; 22023 bad max_attempts
-- or dedup_key. Tables: queues (key share), records (insert).
create or replace function pgclaim.enqueue(
    queue text,
    payload jsonb,
    priority integer default 0,
    run_at timestamptz default null,
    dedup_key text default null,
    max_attempts integer default null
)
returns bigint
language plpgsql
volatile
security definer
set search_path = ''
as $fn$
#variable_conflict use_column
declare
    v_q pgclaim.queues;
    v_now timestamptz := pgclaim._now();
    v_run_at timestamptz := coalesce(enqueue.run_at, v_now);
    v_id bigint;
begin
    v_q := pgclaim._queue(enqueue.queue, true);
    if enqueue.payload is null then
        raise exception using
            errcode = '22004',
            message = pg_catalog.format(
                'pgclaim: payload must not be null (queue %L)', enqueue.queue);
    end if;
    if enqueue.priority is null then
        raise exception using errcode = '22004', message = 'pgclaim: priority must not be null';
    end if;
    if enqueue.max_attempts < 1 then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format(
                'pgclaim: max_attempts must be at least 1, got %s', enqueue.max_attempts);
    end if;
    if enqueue.dedup_key is not null then
        perform pgclaim._check_text('dedup_key', enqueue.dedup_key, 1000);
    end if;

    loop
        insert into pgclaim.records as r (
            queue, priority, run_at, payload, max_attempts, dedup_key, enqueued_at
        ) values (
            enqueue.queue, enqueue.priority, v_run_at, enqueue.payload,
            coalesce(enqueue.max_attempts, v_q.max_attempts), enqueue.dedup_key, v_now
        )
        on conflict (queue, dedup_key)
        where dedup_key is not null and status in ('pending', 'running')
        do nothing
        returning r.id into v_id;
        exit when v_id is not null;
        -- A record with this dedup_key is unfinished: return it. It may finish
        -- between the insert and this read; then try the insert again.
        select r.id into v_id from pgclaim.records as r
        where r.queue = enqueue.queue and r.dedup_key = enqueue.dedup_key
          and r.status in ('pending', 'running');
        if found then
            return v_id;
        end if;
    end loop;

    if v_run_at <= v_now then
        perform pgclaim._wake(enqueue.queue, v_now);
    end if;
    return v_id;
end;
$fn$;

comment on function pgclaim.enqueue(text, jsonb, integer, timestamptz, text, integer) is
'Adds a record to a queue and returns its id; with a dedup_key already held by an '
'unfinished record, returns that record''s id instead. Raises PC001, 22004, 22023.';

-- ---- sql/30_api/pgclaim.enqueue_batch.sql ----
-- pgclaim.enqueue_batch(queue, payloads, priority, run_at)
-- Adds one record per payload in one statement.
-- Returns: the new ids in input order. Notifies pgclaim_<queue> once when due now
-- (unless the queue has a backlog, see _wake).
-- Raises: PC001 unknown queue; 22004 null array, null element (named by its
-- 1-based position) or null priority. Tables: queues (key share), records (insert).
create or replace function pgclaim.enqueue_batch(
    queue text,
    payloads jsonb[],
    priority integer default 0,
    run_at timestamptz default null
)
returns setof bigint
language plpgsql
volatile
security definer
set search_path = ''
as $fn$
declare
    v_q pgclaim.queues;
    v_now timestamptz := pgclaim._now();
    v_run_at timestamptz := coalesce(enqueue_batch.run_at, v_now);
    v_null bigint;
begin
    v_q := pgclaim._queue(enqueue_batch.queue, true);
    if enqueue_batch.payloads is null then
        raise exception using errcode = '22004', message = 'pgclaim: payloads must not be null';
    end if;
    if enqueue_batch.priority is null then
        raise exception using errcode = '22004', message = 'pgclaim: priority must not be null';
    end if;
    if pg_catalog.array_position(enqueue_batch.payloads, null) is not null then
        v_null := pg_catalog.array_position(enqueue_batch.payloads, null);
        raise exception using
            errcode = '22004',
            message = pg_catalog.format(
                'pgclaim: payloads[%s] must not be null (queue %L)', v_null, enqueue_batch.queue);
    end if;
    if pg_catalog.cardinality(enqueue_batch.payloads) = 0 then
        return;
    end if;

    -- Rows are inserted in input order, so identity values ascend with it.
    return query
    with ins as (
        insert into pgclaim.records as r (
            queue, priority, run_at, payload, max_attempts, enqueued_at
        )
        select enqueue_batch.queue, enqueue_batch.priority, v_run_at, u.p,
            v_q.max_attempts, v_now
        from pg_catalog.unnest(enqueue_batch.payloads) with ordinality as u (p, n)
        order by u.n
        returning r.id
    )
    select ins.id from ins order by ins.id;

    if v_run_at <= v_now then
        perform pgclaim._wake(enqueue_batch.queue, v_now);
    end if;
end;
$fn$;

comment on function pgclaim.enqueue_batch(text, jsonb[], integer, timestamptz) is
'Adds one record per payload in one statement and returns the ids in input order. '
'Raises PC001 unknown queue, 22004 for a null array or element.';

-- ---- sql/30_api/pgclaim.extend_lease.sql ----
-- pgclaim.extend_lease(worker_id, ids, lease, lease_tokens)
-- Extends to now + lease (default: the length the record was claimed with) the
-- leases of the records among ids that worker_id holds.
-- Returns: how many leases it extended; ids it may not touch are skipped.
-- Raises: 22004 null worker_id or ids; 22023 lease_tokens not matching ids or
-- lease not positive. Tables: records (update).
create or replace function pgclaim.extend_lease(
    worker_id text,
    ids bigint[],
    lease interval default null,
    lease_tokens bigint[] default null
)
returns integer
language plpgsql
volatile
security definer
set search_path = ''
as $fn$
declare
    v_now timestamptz := pgclaim._now();
    v_count integer := 0;
    v_n integer;
    v_group record;
begin
    perform pgclaim._check_text('worker_id', extend_lease.worker_id);
    perform pgclaim._check_ids(extend_lease.ids, extend_lease.lease_tokens);
    perform pgclaim._check_interval('lease', extend_lease.lease);
    for v_group in
        select g.token, g.ids
        from pgclaim._token_groups(extend_lease.ids, extend_lease.lease_tokens) as g
    loop
        update pgclaim.records as r set
            lease_until = v_now + coalesce(extend_lease.lease, r.lease_for),
            lease_for = coalesce(extend_lease.lease, r.lease_for)
        where r.id = any(v_group.ids)
          -- status compared as text: the planner must not read the partial index of
          -- running records whole; it looks the ids up by primary key, in id order
          and r.status::text = 'running'
          and r.worker_id = extend_lease.worker_id
          and (v_group.token is null or r.lease_token = v_group.token);
        get diagnostics v_n = row_count;
        v_count := v_count + v_n;
    end loop;
    return v_count;
end;
$fn$;

comment on function pgclaim.extend_lease(text, bigint[], interval, bigint[]) is
'Extends the leases of the records among ids that worker_id holds; returns how many.';

-- ---- sql/30_api/pgclaim.fail.sql ----
-- pgclaim.fail(worker_id, id, error, retry_after, lease_token, fatal)
-- Reports a failed attempt. With attempts left (and fatal false) the record goes
-- back to pending, due after retry_after or the queue's backoff; otherwise it is
-- dead-lettered as failed. The error text is kept in last_error.
-- Returns: the new status, 'pending' or 'failed'.
-- Raises: PC002 no such record; PC003 worker_id does not hold it (or under
-- another lease_token); 22004 null worker_id or id; 22023 retry_after negative.
-- Tables: queues (read), records (update).
create or replace function pgclaim.fail(
    worker_id text,
    id bigint,
    error text,
    retry_after interval default null,
    lease_token bigint default null,
    fatal boolean default false
)
returns text
language plpgsql
volatile
security definer
set search_path = ''
as $fn$
declare
    v_now timestamptz := pgclaim._now();
    v_r pgclaim.records;
    v_q pgclaim.queues;
    v_status pgclaim.status;
begin
    perform pgclaim._check_text('worker_id', fail.worker_id);
    if fail.id is null then
        raise exception using errcode = '22004', message = 'pgclaim: id must not be null';
    end if;
    if fail.retry_after < '0'::interval then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format(
                'pgclaim: retry_after must not be negative, got %L', fail.retry_after::text);
    end if;
    select r.* into v_r from pgclaim.records as r where r.id = fail.id for update;
    if not found then
        raise exception using
            errcode = 'PC002',
            message = pg_catalog.format('pgclaim: record %s does not exist', fail.id);
    end if;
    if v_r.status <> 'running' or v_r.worker_id is distinct from fail.worker_id
       or (fail.lease_token is not null and v_r.lease_token <> fail.lease_token) then
        raise exception using
            errcode = 'PC003',
            message = pg_catalog.format(
                'pgclaim: worker %L does not hold record %s', fail.worker_id, fail.id),
            detail = pg_catalog.format(
                'The record is %s, held by %s under lease token %s.',
                v_r.status, coalesce(v_r.worker_id, 'nobody'),
                coalesce(v_r.lease_token::text, 'none'));
    end if;
    if coalesce(fail.fatal, false) or v_r.attempt >= v_r.max_attempts then
        v_status := 'failed';
        update pgclaim.records as r set
            status = v_status, finished_at = v_now, lease_until = null,
            last_error = fail.error
        where r.id = fail.id;
    else
        select q.* into v_q from pgclaim.queues as q where q.queue = v_r.queue;
        v_status := 'pending';
        update pgclaim.records as r set
            status = v_status,
            run_at = v_now + coalesce(
                fail.retry_after,
                pgclaim._backoff(v_q.backoff_base, v_q.backoff_max, v_r.attempt),
                '0'::interval),
            worker_id = null, lease_until = null, lease_token = null, lease_for = null,
            last_error = fail.error
        where r.id = fail.id;
    end if;
    return v_status::text;
end;
$fn$;

comment on function pgclaim.fail(text, bigint, text, interval, bigint, boolean) is
'Reports a failed attempt: back to pending after retry_after or the backoff while '
'attempts remain, else failed (also when fatal). Returns the new status. '
'Raises PC002 unknown record, PC003 not the holder.';

-- ---- sql/30_api/pgclaim.health.sql ----
-- pgclaim.health(): one jsonb document for probes and operators: reachable,
-- server and schema versions, per-queue counts (all but the completed total,
-- which queue_stats gives) and oldest pending age, live and
-- dead workers, stuck records, the oldest open transaction (it holds back vacuum),
-- connection use, and an overall status: 'failing' when records cannot be
-- claimed (read-only server), 'degraded' with a reason per problem, else 'ok'.
-- Returns: jsonb. Raises: nothing. Tables: queues, records, workers (read).
-- The oldest transaction is read from pg_stat_activity: the installing role sees
-- other roles' transactions only with pg_read_all_stats.
create or replace function pgclaim.health(
    max_xact_age interval default '5 minutes',
    max_pending_age interval default '1 hour'
)
returns jsonb
language plpgsql
stable
security definer
set search_path = ''
set jit = off
as $fn$
declare
    v_reasons text [] := '{}'::text [];
    v_failing boolean := false;
    v_queues jsonb := '{}'::jsonb;
    v_alive integer;
    v_dead integer;
    v_stuck integer;
    v_xact_age interval;
    v_conn integer;
    v_max_conn integer := pg_catalog.current_setting('max_connections')::integer;
    v_row record;
begin
    -- Per queue, through the indexes only (no pass over finished records), so a
    -- probe stays cheap however many records the table keeps.
    for v_row in
        select
            c.queue, c.paused, c.pending, c.scheduled, c.running, c.failed, c.cancelled,
            c.oldest_pending_age, c.completed_last_minute
        from pgclaim._queue_counts(false) as c
    loop
        v_queues := v_queues || pg_catalog.jsonb_build_object(v_row.queue,
            pg_catalog.jsonb_build_object(
                'paused', v_row.paused, 'pending', v_row.pending,
                'scheduled', v_row.scheduled, 'running', v_row.running,
                'failed', v_row.failed, 'cancelled', v_row.cancelled,
                'oldest_pending_age_s',
                pg_catalog.round(extract(epoch from v_row.oldest_pending_age)::numeric, 3),
                'completed_last_minute', v_row.completed_last_minute));
        if v_row.oldest_pending_age > health.max_pending_age and not v_row.paused then
            v_reasons := v_reasons || pg_catalog.format(
                'queue %s: oldest pending record has waited %s', v_row.queue,
                pg_catalog.date_trunc('second', v_row.oldest_pending_age));
        end if;
    end loop;

    select pg_catalog.count(*) filter (where ws.alive),
        pg_catalog.count(*) filter (where not ws.alive)
    into v_alive, v_dead from pgclaim.worker_status as ws;
    if v_dead > 0 then
        v_reasons := v_reasons || pg_catalog.format('%s dead worker(s)', v_dead);
    end if;

    select pg_catalog.count(*) into v_stuck from pgclaim.stuck_records;
    if v_stuck > 0 then
        v_reasons := v_reasons || pg_catalog.format('%s stuck record(s)', v_stuck);
    end if;

    select pg_catalog.count(*) into v_conn
    from pg_catalog.pg_stat_activity as a
    where a.backend_type = 'client backend';
    -- Only transactions of this database hold back the vacuum of its tables.
    select pg_catalog.max(pgclaim._now() - a.xact_start) into v_xact_age
    from pg_catalog.pg_stat_activity as a
    where a.datname = pg_catalog.current_database()
      and (a.backend_xmin is not null or a.backend_xid is not null);
    if v_xact_age > health.max_xact_age then
        v_reasons := v_reasons || pg_catalog.format(
            'a transaction open for %s holds back vacuum',
            pg_catalog.date_trunc('second', v_xact_age));
    end if;
    if v_conn > v_max_conn * 0.9 then
        v_reasons := v_reasons || pg_catalog.format(
            '%s of %s connections in use', v_conn, v_max_conn);
    end if;

    if pg_catalog.pg_is_in_recovery() then
        v_failing := true;
        v_reasons := v_reasons || 'server is read-only (in recovery)'::text;
    end if;

    return pg_catalog.jsonb_build_object(
        'status', case
            when v_failing then 'failing'
            when pg_catalog.cardinality(v_reasons) > 0 then 'degraded'
            else 'ok'
        end,
        'reasons', pg_catalog.to_jsonb(v_reasons),
        'reachable', true,
        'database', pg_catalog.current_database(),
        'server_version', pg_catalog.current_setting('server_version'),
        'schema_version', pgclaim.schema_version(),
        'checked_at', pgclaim._now(),
        'queues', v_queues,
        'workers', pg_catalog.jsonb_build_object('alive', v_alive, 'dead', v_dead),
        'stuck_records', v_stuck,
        'oldest_xact_age_s',
        pg_catalog.round(coalesce(extract(epoch from v_xact_age), 0)::numeric, 3),
        'connections', pg_catalog.jsonb_build_object('used', v_conn, 'max', v_max_conn)
    );
end;
$fn$;

comment on function pgclaim.health(interval, interval) is
'Health document (jsonb): status ok/degraded/failing with reasons, versions, per-queue '
'counts, workers alive and dead, stuck records, oldest transaction, connections.';

-- ---- sql/30_api/pgclaim.heartbeat.sql ----
-- pgclaim.heartbeat(worker_id, ids): the worker is alive; it also extends, by
-- the length each was claimed with, the leases of the records it holds: all of
-- them, or with ids only those among ids. A worker loop passes the ids it is
-- working on, so that a record whose claim reply it never received (a connection
-- cut after the claim committed) is not kept alive by its heartbeats and comes
-- back when its lease expires. An unknown worker is registered.
-- Returns: how many leases it extended. Raises: 22004/22023 bad worker_id.
-- Tables: workers (upsert), records (update).
create or replace function pgclaim.heartbeat(worker_id text, ids bigint[] default null)
returns integer
language plpgsql
volatile
security definer
set search_path = ''
as $fn$
declare
    v_now timestamptz := pgclaim._now();
    v_count integer;
begin
    perform pgclaim._check_text('worker_id', heartbeat.worker_id);
    insert into pgclaim.workers as w (worker_id, started_at, last_seen)
    values (heartbeat.worker_id, v_now, v_now)
    on conflict on constraint workers_pkey do update set last_seen = excluded.last_seen;
    update pgclaim.records as r set lease_until = v_now + r.lease_for
    where r.worker_id = heartbeat.worker_id and r.status = 'running'
      and (heartbeat.ids is null or r.id = any(heartbeat.ids));
    get diagnostics v_count = row_count;
    return v_count;
end;
$fn$;

comment on function pgclaim.heartbeat(text, bigint[]) is
'Marks worker_id alive and extends the leases of the records it holds (only those among '
'ids, when given); returns how many.';

-- ---- sql/30_api/pgclaim.pause_queue.sql ----
-- pgclaim.pause_queue(queue): a paused queue hands out nothing; enqueue still works.
-- Returns: nothing. Raises: PC001 unknown queue. Tables: queues (update).
create or replace function pgclaim.pause_queue(queue text)
returns void
language plpgsql
volatile
security definer
set search_path = ''
as $fn$
begin
    perform pgclaim._queue(pause_queue.queue);
    update pgclaim.queues as q set paused = true where q.queue = pause_queue.queue;
end;
$fn$;

comment on function pgclaim.pause_queue(text) is
'Pauses a queue: claim_batch hands out nothing until resume_queue. Raises PC001.';

-- ---- sql/30_api/pgclaim.purge.sql ----
-- pgclaim.purge(queue, older_than, max_records): deletes finished records
-- (completed, failed, cancelled) of the queue that finished more than
-- older_than ago (default: the queue's retention), at most max_records a call.
-- Returns: how many it deleted. Raises: PC001 unknown queue; 22023 older_than
-- negative or max_records < 1. Tables: records (delete).
create or replace function pgclaim.purge(
    queue text, older_than interval default null, max_records integer default 100000
)
returns integer
language plpgsql
volatile
security definer
set search_path = ''
as $fn$
declare
    v_q pgclaim.queues;
    v_cutoff timestamptz;
    v_count integer;
begin
    v_q := pgclaim._queue(purge.queue);
    if purge.older_than < '0'::interval then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format(
                'pgclaim: older_than must not be negative, got %L', purge.older_than::text);
    end if;
    if purge.max_records is null or purge.max_records < 1 then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format(
                'pgclaim: max_records must be at least 1, got %s',
                coalesce(purge.max_records::text, 'null'));
    end if;
    v_cutoff := pgclaim._now() - coalesce(purge.older_than, v_q.retention);
    -- The outer conditions repeat the inner ones: a row that a concurrent
    -- retry_failed made pending again is re-checked against them and kept.
    delete from pgclaim.records as r
    where r.id in (
        select f.id from pgclaim.records as f
        where f.queue = purge.queue
          and f.status in ('completed', 'failed', 'cancelled')
          and f.finished_at < v_cutoff
        limit purge.max_records
    )
      and r.status in ('completed', 'failed', 'cancelled')
      and r.finished_at < v_cutoff;
    get diagnostics v_count = row_count;
    return v_count;
end;
$fn$;

comment on function pgclaim.purge(text, interval, integer) is
'Deletes finished records of a queue older than older_than (default: its retention), '
'at most max_records; returns how many. Raises PC001, 22023.';

-- ---- sql/30_api/pgclaim.reclaim_orphans.sql ----
-- pgclaim.reclaim_orphans(max_records): takes back running records whose lease
-- expired or whose registered worker has been silent for config.worker_timeout:
-- to pending, or failed when no attempt is left. Bounded and skip-locked, so
-- every worker and pg_cron may run it at once.
-- Returns: how many records it took back. Raises: 22023 max_records < 1.
-- Tables: records (update), workers, config (read).
create or replace function pgclaim.reclaim_orphans(max_records integer default 10000)
returns integer
language plpgsql
volatile
security definer
set search_path = ''
as $fn$
begin
    if reclaim_orphans.max_records is null or reclaim_orphans.max_records < 1 then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format(
                'pgclaim: max_records must be at least 1, got %s',
                coalesce(reclaim_orphans.max_records::text, 'null'));
    end if;
    return pgclaim._reclaim(null, reclaim_orphans.max_records, true);
end;
$fn$;

comment on function pgclaim.reclaim_orphans(integer) is
'Takes back records with an expired lease or a dead worker (at most max_records); '
'returns how many. Safe to run from every worker at once.';

-- ---- sql/30_api/pgclaim.register_worker.sql ----
-- pgclaim.register_worker(worker_id, info): records a worker and its first
-- heartbeat; registering again refreshes info and last_seen.
-- Returns: nothing. Raises: 22004/22023 bad worker_id, 22004 null info.
-- Tables: workers (upsert).
create or replace function pgclaim.register_worker(worker_id text, info jsonb default '{}')
returns void
language plpgsql
volatile
security definer
set search_path = ''
as $fn$
declare
    v_now timestamptz := pgclaim._now();
begin
    perform pgclaim._check_text('worker_id', register_worker.worker_id);
    if register_worker.info is null then
        raise exception using errcode = '22004', message = 'pgclaim: info must not be null';
    end if;
    insert into pgclaim.workers as w (worker_id, info, started_at, last_seen)
    values (register_worker.worker_id, register_worker.info, v_now, v_now)
    on conflict on constraint workers_pkey do update
    set info = excluded.info, last_seen = excluded.last_seen;
end;
$fn$;

comment on function pgclaim.register_worker(text, jsonb) is
'Registers a worker (or refreshes it) with free-form info. Raises 22004/22023.';

-- ---- sql/30_api/pgclaim.release.sql ----
-- pgclaim.release(worker_id, ids, lease_tokens)
-- Gives back, unprocessed, the records among ids that worker_id holds: they are
-- pending again at once and the attempt is not counted (graceful shutdown).
-- Returns: how many it released. Raises: 22004 null worker_id or ids; 22023
-- lease_tokens not matching ids.
-- Tables: records (update).
create or replace function pgclaim.release(
    worker_id text, ids bigint[], lease_tokens bigint[] default null
)
returns integer
language plpgsql
volatile
security definer
set search_path = ''
as $fn$
declare
    v_count integer := 0;
    v_queues text[] := '{}'::text[];
    v_group record;
begin
    perform pgclaim._check_text('worker_id', release.worker_id);
    perform pgclaim._check_ids(release.ids, release.lease_tokens);
    for v_group in
        select g.token, g.ids
        from pgclaim._token_groups(release.ids, release.lease_tokens) as g
    loop
        with released as (
            update pgclaim.records as r set
                status = 'pending',
                attempt = r.attempt - 1,
                worker_id = null, lease_until = null, lease_token = null, lease_for = null
            where r.id = any(v_group.ids)
              -- status compared as text: the planner must not read the partial index of
              -- running records whole; it looks the ids up by primary key, in id order
              and r.status::text = 'running'
              and r.worker_id = release.worker_id
              and (v_group.token is null or r.lease_token = v_group.token)
            returning r.queue
        )
        select v_count + pg_catalog.count(*)::integer,
            v_queues || coalesce(pg_catalog.array_agg(distinct released.queue), '{}'::text[])
        into v_count, v_queues
        from released;
    end loop;
    -- Wake the workers of the queues that got records back.
    perform pg_catalog.pg_notify('pgclaim_' || q.queue, '')
    from (select distinct u.queue from pg_catalog.unnest(v_queues) as u (queue)) as q;
    return v_count;
end;
$fn$;

comment on function pgclaim.release(text, bigint[], bigint[]) is
'Releases records that worker_id holds back to pending without counting the attempt; '
'returns how many.';

-- ---- sql/30_api/pgclaim.resume_queue.sql ----
-- pgclaim.resume_queue(queue): lets claim_batch hand out records again and
-- wakes the listening workers.
-- Returns: nothing. Raises: PC001 unknown queue. Tables: queues (update).
create or replace function pgclaim.resume_queue(queue text)
returns void
language plpgsql
volatile
security definer
set search_path = ''
as $fn$
begin
    perform pgclaim._queue(resume_queue.queue);
    update pgclaim.queues as q set paused = false where q.queue = resume_queue.queue;
    perform pg_catalog.pg_notify('pgclaim_' || resume_queue.queue, '');
end;
$fn$;

comment on function pgclaim.resume_queue(text) is
'Resumes a paused queue and notifies its workers. Raises PC001.';

-- ---- sql/30_api/pgclaim.retry_failed.sql ----
-- pgclaim.retry_failed(queue, ids): failed records of the queue (all, or those
-- among ids) go back to pending, due now, with their attempts reset. A dedup_key
-- stays unique among unfinished records: a failed record whose key an unfinished
-- record holds is skipped, and of failed records sharing a key only the newest
-- is retried.
-- Returns: how many. Raises: PC001 unknown queue. Tables: records (update).
create or replace function pgclaim.retry_failed(queue text, ids bigint[] default null)
returns integer
language plpgsql
volatile
security definer
set search_path = ''
as $fn$
declare
    v_now timestamptz := pgclaim._now();
    v_count integer;
begin
    perform pgclaim._queue(retry_failed.queue);
    update pgclaim.records as r set
        status = 'pending', attempt = 0, run_at = v_now, finished_at = null
    where r.queue = retry_failed.queue
      and r.status = 'failed'
      and (retry_failed.ids is null or r.id = any(retry_failed.ids))
      and (r.dedup_key is null or (
          not exists (
              select from pgclaim.records as u
              where u.queue = r.queue and u.dedup_key = r.dedup_key
                and u.status in ('pending', 'running')
          )
          and not exists (
              select from pgclaim.records as n
              where n.queue = r.queue and n.dedup_key = r.dedup_key
                and n.status = 'failed' and n.id > r.id
                and (retry_failed.ids is null or n.id = any(retry_failed.ids))
          )
      ));
    get diagnostics v_count = row_count;
    if v_count > 0 then
        perform pg_catalog.pg_notify('pgclaim_' || retry_failed.queue, '');
    end if;
    return v_count;
end;
$fn$;

comment on function pgclaim.retry_failed(text, bigint[]) is
'Puts failed records of a queue (all, or those among ids) back to pending with their '
'attempts reset (one per dedup_key still free); returns how many. Raises PC001.';

-- ---- sql/30_api/pgclaim.schema_version.sql ----
-- pgclaim.schema_version(): the version of the installed schema; each migration
-- that changes the schema raises it.
-- Returns: integer. Raises: nothing. Tables: none.
create or replace function pgclaim.schema_version()
returns integer
language sql
immutable
security definer
set search_path = ''
as $fn$
    select 1;
$fn$;

comment on function pgclaim.schema_version() is
'The version of the installed pgclaim schema.';

-- ---- sql/40_views/pgclaim.queue_stats.sql ----
-- pgclaim.queue_stats: one row per queue with its counts by state (defined in
-- _queue_counts, which health() reads too). pending counts records due now,
-- scheduled those due later; oldest_pending_age is how long the longest-waiting
-- due record has waited. The completed total costs one pass over the table: keep
-- finished records purged.
create or replace view pgclaim.queue_stats as
select
    c.queue,
    c.paused,
    c.pending,
    c.scheduled,
    c.running,
    c.completed,
    c.failed,
    c.cancelled,
    c.oldest_pending_age,
    c.completed_last_minute
from pgclaim._queue_counts(true) as c;

comment on view pgclaim.queue_stats is
'Per queue: pending (due), scheduled (due later), running, completed, failed, cancelled, '
'oldest_pending_age, completed_last_minute.';

-- ---- sql/40_views/pgclaim.stuck_records.sql ----
-- pgclaim.stuck_records: running records that nobody is working on any more:
-- their lease has expired, or their worker has stopped heartbeating. They come
-- back with the next claim_batch sweep or reclaim_orphans.
create or replace view pgclaim.stuck_records as
select
    r.id,
    r.queue,
    r.worker_id,
    r.attempt,
    r.max_attempts,
    r.lease_until,
    case
        when r.lease_until < pgclaim._now() then 'lease expired'
        else 'worker silent'
    end as reason,
    pgclaim._now() - coalesce(
        least(r.lease_until, w.last_seen + c.worker_timeout), r.lease_until
    ) as stuck_for
from pgclaim.records as r
cross join pgclaim.config as c
left join pgclaim.workers as w on r.worker_id = w.worker_id
where
    r.status = 'running'
    and (
        r.lease_until < pgclaim._now()
        or w.last_seen < pgclaim._now() - c.worker_timeout
    );

comment on view pgclaim.stuck_records is
'Running records whose lease expired or whose worker went silent, with the reason.';

-- ---- sql/40_views/pgclaim.worker_status.sql ----
-- pgclaim.worker_status: registered workers, their last heartbeat, whether they
-- count as alive (heard from within config.worker_timeout) and what they hold.
create or replace view pgclaim.worker_status as
select
    w.worker_id,
    w.info,
    w.started_at,
    w.last_seen,
    pgclaim._now() - w.last_seen as silent_for,
    w.last_seen >= pgclaim._now() - c.worker_timeout as alive,
    (
        select pg_catalog.count(*) from pgclaim.records as r
        where r.worker_id = w.worker_id and r.status = 'running'
    ) as held
from pgclaim.workers as w
cross join pgclaim.config as c;

comment on view pgclaim.worker_status is
'Registered workers: last_seen, silent_for, alive (within worker_timeout), held records.';

-- ---- sql/90_grants.sql ----
-- pgclaim: every revoke and grant, in one place.
-- pgclaim_producer enqueues; pgclaim_worker claims and reports; pgclaim_admin
-- may do everything. No role reaches the tables: the functions are SECURITY
-- DEFINER and run as the installing role.

revoke all on schema pgclaim from public;
grant usage on schema pgclaim to pgclaim_producer, pgclaim_worker, pgclaim_admin;

revoke all on all tables in schema pgclaim from public;
revoke all on all sequences in schema pgclaim from public;
revoke all on all functions in schema pgclaim from public;

-- The views call these in the caller's name.
grant execute on function pgclaim._now() to pgclaim_producer, pgclaim_worker, pgclaim_admin;
grant execute on function pgclaim._queue_counts(boolean) to pgclaim_worker, pgclaim_admin;

grant execute on function pgclaim.schema_version() to
pgclaim_producer, pgclaim_worker, pgclaim_admin;
grant execute on function pgclaim.health(interval, interval) to
pgclaim_producer, pgclaim_worker, pgclaim_admin;

grant execute on function pgclaim.enqueue(text, jsonb, integer, timestamptz, text, integer) to
pgclaim_producer, pgclaim_admin;
grant execute on function pgclaim.enqueue_batch(text, jsonb[], integer, timestamptz) to
pgclaim_producer, pgclaim_admin;

grant execute on function pgclaim.claim_batch(text, text, integer, interval) to
pgclaim_worker, pgclaim_admin;
grant execute on function pgclaim.complete(text, bigint[], bigint[]) to
pgclaim_worker, pgclaim_admin;
grant execute on function pgclaim.fail(text, bigint, text, interval, bigint, boolean) to
pgclaim_worker, pgclaim_admin;
grant execute on function pgclaim.extend_lease(text, bigint[], interval, bigint[]) to
pgclaim_worker, pgclaim_admin;
grant execute on function pgclaim.release(text, bigint[], bigint[]) to
pgclaim_worker, pgclaim_admin;
grant execute on function pgclaim.register_worker(text, jsonb) to
pgclaim_worker, pgclaim_admin;
grant execute on function pgclaim.heartbeat(text, bigint[]) to pgclaim_worker, pgclaim_admin;
grant execute on function pgclaim.deregister_worker(text) to pgclaim_worker, pgclaim_admin;
grant execute on function pgclaim.reclaim_orphans(integer) to pgclaim_worker, pgclaim_admin;

grant execute on function pgclaim.create_queue(
    text, interval, integer, interval, interval, interval
) to pgclaim_admin;
grant execute on function pgclaim.alter_queue(
    text, interval, integer, interval, interval, interval
) to pgclaim_admin;
grant execute on function pgclaim.drop_queue(text, boolean) to pgclaim_admin;
grant execute on function pgclaim.pause_queue(text) to pgclaim_admin;
grant execute on function pgclaim.resume_queue(text) to pgclaim_admin;
grant execute on function pgclaim.retry_failed(text, bigint[]) to pgclaim_admin;
grant execute on function pgclaim.cancel(bigint[]) to pgclaim_admin;
grant execute on function pgclaim.purge(text, interval, integer) to pgclaim_admin;
grant execute on function pgclaim.configure(interval, integer) to pgclaim_admin;

grant select on pgclaim.queue_stats, pgclaim.worker_status, pgclaim.stuck_records to
pgclaim_worker, pgclaim_admin;
