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

-- (end of flow control)
-- ---------------------------------------------------------------------------
-- Counters for metrics.
-- ---------------------------------------------------------------------------

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
