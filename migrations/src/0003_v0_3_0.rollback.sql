-- Way back from release 0.3.0 to 0.2.0 (yoyo rollback of 0003_v0_3_0): undoes the
-- upgrade steps of migrations/src/0003_v0_3_0.sql, then every function, view and
-- grant of 0.2.0 is created again exactly as migrations/0002_v0_2_0.sql made it,
-- owned by pgclaim_owner. Records keep their state, lease, token and holder.

set local search_path = pg_catalog, pg_temp;
set local lock_timeout = '10s';

-- As in the upgrade, every table is locked at once, in attempts of at most 100 ms
-- that give back what they got, until lock_timeout has passed (then 55P03, nothing
-- changed); the views go in the same attempt.
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
                        'pgclaim: the rollback could not lock pgclaim''s tables within %s',
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

-- Every function of 0.3.0 goes; 0.2.0's are created again below (those 0.3.0 added
-- or whose signature it changed must not stay).
do $do$
declare
    v_function text;
begin
    for v_function in
        select p.oid::regprocedure::text
        from pg_catalog.pg_proc as p
        where p.pronamespace = 'pgclaim'::regnamespace
    loop
        execute pg_catalog.format('drop function %s', v_function);
    end loop;
end
$do$;

-- ---------------------------------------------------------------------------
-- Flow control: groups, concurrency caps, rate limits, schedules, dedup windows.
-- ---------------------------------------------------------------------------

-- FIFO groups: 0.2.0 has none. Records waiting behind their group's head get
-- their own priority and due time back and become claimable as they are.
update pgclaim.records as r set priority = w.priority, run_at = w.run_at
from pgclaim.waiting as w
where r.id = w.id;

drop table pgclaim.waiting;
drop table pgclaim.groups;
alter table pgclaim.records drop column group_key;
alter table pgclaim.finished drop column group_key;
drop table pgclaim.queue_flow;
drop table pgclaim.dedup_keys;
drop type pgclaim.item;
alter table pgclaim.queues
drop column fair,
drop column max_running,
drop column rate,
drop column burst,
drop column dedup_window;

-- (end of flow control)
-- ---------------------------------------------------------------------------
-- Schedules.
-- ---------------------------------------------------------------------------

-- 0.2.0 has no schedules: they go, with their view.
drop view pgclaim.schedule_status;
drop table pgclaim.schedules;

-- (end of schedules)
-- ---------------------------------------------------------------------------
-- Counters for metrics.
-- ---------------------------------------------------------------------------

-- dead_letters() went with every function above; its type and the counters go.
drop type pgclaim.dead_letter;

alter table pgclaim.queue_totals
drop column completions,
drop column failures,
drop column retries,
drop column reclaims,
drop column releases,
drop column dead_letters,
drop column cancellations,
drop column cancelled_running;

comment on table pgclaim.queue_totals is
'Completed records kept per queue, as counters in slots: their sum is the total.';

-- 0.2.0's foreign key to the queue comes back (counters of no queue go first).
delete from pgclaim.queue_totals as t
where not exists (
    select from pgclaim.queues as q
    where q.queue = t.queue
);

alter table pgclaim.queue_totals
add constraint queue_totals_queue_fkey foreign key (queue)
references pgclaim.queues (queue) on delete cascade;

-- (end of counters for metrics)
-- ---------------------------------------------------------------------------
-- Fencing, latency and health.
-- ---------------------------------------------------------------------------

-- The claim times of records go (0.2.0 has no latency()).
alter table pgclaim.records
drop column first_claimed_at,
drop column claimed_at;
alter table pgclaim.finished
drop column first_claimed_at,
drop column claimed_at;

-- (end of fencing, latency and health)
-- ---------------------------------------------------------------------------

-- Maintenance.
-- ---------------------------------------------------------------------------

-- The automatic purge goes with its setting and its slice sequence.
alter table pgclaim.config drop column purge_limit;

drop sequence pgclaim.purge_slice_seq;

comment on table pgclaim.config is
'Cluster-wide settings: worker_timeout (a worker silent that long is dead), '
'sweep_limit (expired leases each claim_batch takes back), max_ids (ids in one call), '
'max_error_bytes (error texts are cut there), max_info_bytes (worker info).';

-- (end of maintenance)
-- ---------------------------------------------------------------------------

-- 0.2.0's functions, views and grants follow, created by pgclaim_owner.
set local role pgclaim_owner;
