-- Way back from release 0.2.0 to 0.1.0 (yoyo rollback of 0002_v0_2_0): undoes the
-- upgrade steps of migrations/src/0002_v0_2_0.sql, then every function, view and
-- grant of 0.1.0 is created again exactly as migrations/0001_initial.sql made it.
-- Run it as the role that installed 0.1.0: as in 0.1.0, that role owns schema
-- pgclaim and everything in it afterwards, and the functions run as it.
--
-- Records keep their state, lease and token. A record claimed under 0.2.0 keeps
-- its random token and is reported on by worker_id and token, as in 0.1.0; the
-- role that claimed it is forgotten. What 0.2.0 added is lost: per-queue grants
-- (every queue is open to every pgclaim role again), the limits of queues and of
-- the configuration, the role that owns each worker id. Roles are cluster-wide and
-- stay: pgclaim_owner (and its comment marks) may serve another database.

set local search_path = pg_catalog, pg_temp;

-- As in the upgrade, every table is locked at once, in attempts of at most 100 ms
-- that give back what they got, until lock_timeout has passed (then 55P03, nothing
-- changed), so that the way back never deadlocks with workers' calls. The views are
-- dropped in the same attempt, as their readers lock a view before its tables (and
-- LOCK TABLE on a view would lock the system catalogs 0.2.0's views read too).
--
-- Every view and function of 0.2.0 goes, and 0.1.0's are created again below: the
-- ones 0.2.0 added or whose signature it changed must not stay, and the others come
-- back with 0.1.0's bodies, owner and grants.
set local lock_timeout = '10s';

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

drop table pgclaim.queue_grants;

-- Finished records come back into pgclaim.records, with their ids, where 0.1.0
-- keeps them, with 0.1.0's two indexes on them; the completion counters go.
alter table pgclaim.records drop constraint records_unfinished;

insert into pgclaim.records (
    id, queue, status, priority, run_at, payload, attempt, max_attempts, dedup_key,
    worker_id, lease_until, lease_token, lease_for, enqueued_at, finished_at, last_error,
    holder_role
) overriding system value
select
    f.id,
    f.queue,
    f.status,
    f.priority,
    f.run_at,
    f.payload,
    f.attempt,
    f.max_attempts,
    f.dedup_key,
    f.worker_id,
    f.lease_until,
    f.lease_token,
    f.lease_for,
    f.enqueued_at,
    f.finished_at,
    f.last_error,
    f.holder_role
from pgclaim.finished as f
order by f.finished_at, f.id;

drop table pgclaim.finished;

drop table pgclaim.queue_totals;

create index records_finished_brin on pgclaim.records using brin (finished_at)
with (pages_per_range = 32, autosummarize = on);

create index records_dead_idx on pgclaim.records (queue, status, finished_at)
where status in ('failed', 'cancelled');

comment on table pgclaim.records is
'Every record of every queue; reach it through the pgclaim functions only.';

-- Ownership goes back to the role running this, which 0.1.0 had as the owner of
-- everything (a table takes its indexes and its identity sequence along).
alter schema pgclaim owner to current_user;

do $do$
declare
    v_object record;
begin
    for v_object in
        select c.oid::regclass::text as name
        from pg_catalog.pg_class as c
        where c.relnamespace = 'pgclaim'::regnamespace and c.relkind = 'r'
    loop
        execute pg_catalog.format('alter table %s owner to current_user', v_object.name);
    end loop;
    for v_object in
        select t.oid::regtype::text as name
        from pg_catalog.pg_type as t
        where t.typnamespace = 'pgclaim'::regnamespace and t.typtype in ('e', 'c')
          and (t.typrelid = 0 or exists (
              select from pg_catalog.pg_class as c where c.oid = t.typrelid and c.relkind = 'c'
          ))
    loop
        execute pg_catalog.format('alter type %s owner to current_user', v_object.name);
    end loop;
end
$do$;

-- 0.1.0 draws lease tokens from this sequence, which 0.2.0 kept unused. It goes
-- back to the role running this, and starts again past the highest token that a
-- claim made under 0.1.0 left on a record (a
-- claim under 0.2.0 records its role, one under 0.1.0 did not), so that no token
-- it draws is one that a holder from before the upgrade may still report with.
-- Records claimed under 0.2.0 keep their random tokens (64 random bits each).
alter sequence pgclaim.lease_token_seq owner to current_user;

comment on sequence pgclaim.lease_token_seq is
'Lease tokens: each claim_batch call draws one, so a report can name its claim.';

select pg_catalog.setval('pgclaim.lease_token_seq', t.last)
from (
    select pg_catalog.max(r.lease_token) as last
    from pgclaim.records as r
    where r.holder_role is null and r.lease_token > 0
) as t
where t.last is not null;

alter table pgclaim.queues
drop column max_payload_bytes,
drop column max_lease,
drop column min_priority,
drop column max_priority,
drop column max_batch,
drop column restricted;

comment on table pgclaim.queues is 'One row per queue and its settings.';

alter table pgclaim.records drop column holder_role;

alter table pgclaim.workers drop column owner_role;

comment on table pgclaim.workers is 'Registered workers and their last heartbeat.';

alter table pgclaim.config
drop column max_ids,
drop column max_error_bytes,
drop column max_info_bytes;

comment on table pgclaim.config is
'Cluster-wide settings: worker_timeout (a worker silent that long is dead), '
'sweep_limit (expired leases each claim_batch takes back).';

-- 0.2.0 kept the functions a later release adds from PUBLIC (default privileges of
-- pgclaim_owner in this database); 0.1.0 had no default privileges.
alter default privileges for role pgclaim_owner grant execute on functions to public;
