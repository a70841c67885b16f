-- Upgrade steps from release 0.2.0 (migrations/0002_v0_2_0.sql) to 0.3.0, run
-- after sql/00_roles.sql and before the functions, views and grants of sql/,
-- which replace every one of 0.2.0's. Records in flight keep their state, lease,
-- token and holder.
--
-- The steps below wait at most this long for the tables' locks (claims and reports
-- hold them for milliseconds): a migration that cannot get them fails, changes
-- nothing, and can be run again.
set local lock_timeout = '10s';

-- Every table is locked at once, in attempts of at most 100 ms that give back what
-- they got, until lock_timeout has passed (then 55P03, nothing changed), so that
-- the upgrade never deadlocks with workers' calls (see 0002_v0_2_0.sql). The views
-- go in the same attempt and come back from sql/40_views/, whatever columns this
-- release gives them.
do $do$
declare
    v_timeout text := pg_catalog.current_setting('lock_timeout');
    v_give_up timestamptz := pg_catalog.clock_timestamp() + v_timeout::interval;
begin
    perform pg_catalog.set_config('lock_timeout', '100ms', true);
    loop
        begin
            lock table pgclaim.queues, pgclaim.records, pgclaim.workers, pgclaim.config,
            pgclaim.queue_grants, pgclaim.finished, pgclaim.queue_totals
            in access exclusive mode;
            drop view pgclaim.queue_permissions, pgclaim.queue_stats, pgclaim.stuck_records,
            pgclaim.worker_status;
            exit;
        exception when lock_not_available or deadlock_detected then
            if pg_catalog.clock_timestamp() >= v_give_up then
                raise exception using
                    errcode = '55P03',
                    message = pg_catalog.format(
                        'pgclaim: the upgrade could not lock pgclaim''s tables within %s',
                        v_timeout),
                    hint = 'Nothing was changed: run it again. A transaction that holds '
                    'one of them for long (see pg_locks) must end first.';
            end if;
            perform pg_catalog.pg_sleep(0.05 * pg_catalog.random());
        end;
    end loop;
    perform pg_catalog.set_config('lock_timeout', v_timeout, true);
end
$do$;

-- ---------------------------------------------------------------------------
-- Flow control: groups, concurrency caps, rate limits, schedules, dedup windows.
-- ---------------------------------------------------------------------------

-- FIFO groups. Records of 0.2.0 have no group: they keep their state and place.
-- A record waiting behind its group's head is pending with priority -2147483648
-- and run_at 'infinity', so the claim's index is left as it is and its scan stops
-- before such records. That priority is no queue's any more: a queue that allowed
-- it (and its records that had it, few if any) moves to -2147483647.
update pgclaim.queues set min_priority = -2147483647
where min_priority = -2147483648;

update pgclaim.queues set max_priority = -2147483647
where max_priority = -2147483648;

update pgclaim.records set priority = -2147483647
where priority = -2147483648;
alter table pgclaim.records add column group_key text;
alter table pgclaim.finished add column group_key text;

-- Queue settings of flow control: fair off and no limit, as 0.2.0's queues ran.
alter table pgclaim.queues
add column fair boolean not null default false,
add column max_running integer,
add column rate double precision,
add column burst integer,
add column dedup_window interval;

set local role pgclaim_owner;

create table pgclaim.groups (
    queue text not null,
    group_key text not null,
    primary key (queue, group_key)
) with (fillfactor = 50);

comment on table pgclaim.groups is
'FIFO groups that have an unfinished record (their head, and those waiting behind it).';

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

create table pgclaim.queue_flow (
    queue text primary key,
    tokens double precision not null,
    refilled_at timestamptz not null
) with (fillfactor = 50);

comment on table pgclaim.queue_flow is
'Claim turns and the token bucket of queues with max_running or rate.';

create table pgclaim.dedup_keys (
    queue text not null,
    dedup_key text not null,
    id bigint not null,
    finished_at timestamptz not null,
    primary key (queue, dedup_key)
);

comment on table pgclaim.dedup_keys is
'dedup_keys of finished records of queues with a dedup_window, and when each finished.';

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

reset role;

-- Signatures that changed (sql/ creates the new ones).
drop function pgclaim.enqueue(text, jsonb, integer, timestamptz, text, integer);
drop function pgclaim._queue_counts(boolean);
drop function pgclaim.create_queue(
    text, interval, integer, interval, interval, interval, integer, interval, integer, integer,
    integer
);
drop function pgclaim.alter_queue(
    text, interval, integer, interval, interval, interval, integer, interval, integer, integer,
    integer
);
-- 0.2.0's function takes its queue row: with columns added, the old one goes.
drop function pgclaim._check_settings(pgclaim.queues);

-- (end of flow control)
-- ---------------------------------------------------------------------------
-- Schedules.
-- ---------------------------------------------------------------------------

set local role pgclaim_owner;

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

reset role;

-- (end of schedules)
-- ---------------------------------------------------------------------------
-- Counters for metrics.
-- ---------------------------------------------------------------------------

-- The counters that pgclaim.metrics() reports, at the end of queue_totals (no
-- rewrite: constant defaults), and the row type of dead_letters().
alter table pgclaim.queue_totals
add column completions bigint not null default 0,
add column failures bigint not null default 0,
add column retries bigint not null default 0,
add column reclaims bigint not null default 0,
add column releases bigint not null default 0,
add column dead_letters bigint not null default 0,
add column cancellations bigint not null default 0,
add column cancelled_running bigint not null default 0;

comment on table pgclaim.queue_totals is
'Per queue, counters in slots (their sum is the total): completed records kept, and the '
'ever-growing counters that pgclaim.metrics() reports.';

-- No foreign key from the counters to their queue: a report that adds the first
-- row of its slot would check it, and so wait for the queue's row while holding
-- the records it finishes, which drop_queue locks after that row (a deadlock).
-- drop_queue deletes the queue's counters itself.
alter table pgclaim.queue_totals drop constraint queue_totals_queue_fkey;

-- The counters start from the records kept, read without a pass over
-- pgclaim.finished: completions from the completed counters (the completed records
-- kept), dead letters and cancellations through finished_dead_idx (the failed and
-- cancelled records kept, few by nature). Attempts that ended before the upgrade
-- in failures, retries, reclaims or releases left no trace to count: those start at 0.
update pgclaim.queue_totals as t set completions = t.completed
where t.completed > 0;

insert into pgclaim.queue_totals as t (queue, slot, dead_letters, cancellations)
select
    f.queue,
    0 as slot,
    pg_catalog.count(*) filter (where f.status = 'failed') as dead_letters,
    pg_catalog.count(*) filter (where f.status = 'cancelled') as cancellations
from pgclaim.finished as f
where f.status in ('failed', 'cancelled')
group by f.queue
on conflict on constraint queue_totals_pkey do update
    set
        dead_letters = t.dead_letters + excluded.dead_letters,
        cancellations = t.cancellations + excluded.cancellations;

set local role pgclaim_owner;

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

reset role;

-- (end of counters for metrics)
-- ---------------------------------------------------------------------------
-- Fencing, latency and health.
-- ---------------------------------------------------------------------------

-- When each record was first and last claimed (latency): null for the records
-- claimed before the upgrade, which latency() leaves out. Added at the end of both
-- tables, as nullable columns without a default: no rewrite.
alter table pgclaim.records
add column first_claimed_at timestamptz,
add column claimed_at timestamptz;
alter table pgclaim.finished
add column first_claimed_at timestamptz,
add column claimed_at timestamptz;

-- retry_failed and cancel take filters (parameters added at the end, with defaults,
-- so older calls keep working; cancel's ids gets a default): the old signatures go.
drop function pgclaim.retry_failed(text, bigint[]);
drop function pgclaim.cancel(bigint[]);

-- (end of fencing, latency and health)
-- ---------------------------------------------------------------------------
-- ---------------------------------------------------------------------------
-- Maintenance.
-- ---------------------------------------------------------------------------

-- reclaim_orphans also deletes a bounded number of finished records past their
-- queue's retention (config.purge_limit a call, 0 turns it off), reading
-- pgclaim.finished a slice at a time (purge_slice_seq); configure sets the limit.
drop function pgclaim.configure(interval, integer, integer, integer, integer);

alter table pgclaim.config
add column purge_limit integer not null default 1000 check (purge_limit >= 0);

comment on table pgclaim.config is
'Cluster-wide settings: worker_timeout (a worker silent that long is dead), '
'sweep_limit (expired leases each claim_batch takes back), max_ids (ids in one call), '
'max_error_bytes (error texts are cut there), max_info_bytes (worker info), '
'purge_limit (expired finished records each reclaim_orphans deletes).';

set local role pgclaim_owner;

create sequence pgclaim.purge_slice_seq;

comment on sequence pgclaim.purge_slice_seq is
'The next slice of pgclaim.finished the automatic purge of reclaim_orphans reads.';

reset role;

-- (end of maintenance)
-- ---------------------------------------------------------------------------
