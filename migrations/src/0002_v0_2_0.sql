-- Upgrade steps from release 0.1.0 (migrations/0001_initial.sql) to 0.2.0, run
-- after sql/00_roles.sql (the roles, pgclaim_owner among them) and before the
-- functions, views and grants of sql/, which replace every one of 0.1.0's.
-- Records in flight keep their state, lease and token: a record claimed before
-- the upgrade has no holder_role and stays reportable by its worker_id alone
-- until it finishes or its lease ends.

-- The ALTER TABLEs below wait at most this long for the tables' locks (claims and
-- reports hold them for milliseconds): a migration that cannot get them fails and
-- can be run again, rather than queueing every worker's call behind it.
set local lock_timeout = '10s';

-- 0.1.0 accepted a run_at of -infinity, which made queue_stats and health() fail
-- (cannot subtract infinite timestamps): such records are due since they were
-- enqueued. Done before the ALTERs below, so that no table lock is held while
-- the unfinished records are read.
update pgclaim.records as r set run_at = r.enqueued_at
where r.status = 'pending' and r.run_at = '-infinity'::timestamptz;
update pgclaim.records as r set run_at = r.enqueued_at
where r.status = 'running' and r.run_at = '-infinity'::timestamptz;

-- Finished records leave the table that claims work on (sql/10_tables.sql): the
-- finished records of 0.1.0 move to pgclaim.finished, in finishing order, with
-- their ids. This reads and rewrites every finished record once (about 10 s per
-- million records on a small server; purge what is past retention first to make
-- it quicker), before the tables are locked, so that 0.1.0's workers go on
-- meanwhile: it takes row locks only, on records no worker touches any more. (The
-- table passes to pgclaim_owner with the rest below.)
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
    holder_role oid
) with (
    autovacuum_vacuum_insert_scale_factor = 0.05,
    autovacuum_analyze_scale_factor = 0.02
);

comment on table pgclaim.finished is
'Finished records (completed, failed, cancelled), kept for their queue''s retention.';

with moved as (
    delete from pgclaim.records as r
    where r.status in ('completed', 'failed', 'cancelled')
    returning
        r.id, r.queue, r.status, r.priority, r.run_at, r.payload, r.attempt,
        r.max_attempts, r.dedup_key, r.worker_id, r.lease_token, r.lease_for,
        r.enqueued_at, r.finished_at, r.last_error
)

insert into pgclaim.finished (
    id, queue, status, priority, run_at, payload, attempt, max_attempts, dedup_key,
    worker_id, lease_until, lease_token, lease_for, enqueued_at, finished_at, last_error
)
select
    m.id,
    m.queue,
    m.status,
    m.priority,
    m.run_at,
    m.payload,
    m.attempt,
    m.max_attempts,
    m.dedup_key,
    m.worker_id,
    null as lease_until,
    m.lease_token,
    m.lease_for,
    m.enqueued_at,
    coalesce(m.finished_at, m.enqueued_at) as finished_at,
    m.last_error
from moved as m
order by finished_at, m.id;

-- Every table and view the steps below alter is locked here, all at once, before
-- the first ALTER. Taken one by one as each ALTER came, the locks deadlocked with
-- workers' calls that lock the same tables in another order (claim_batch locks
-- queues then records, fail records then queues, heartbeat workers then records),
-- and PostgreSQL aborted one side: sometimes the upgrade. Here each attempt waits
-- at most 100 ms and, when it fails, gives back what it got (the block's
-- subtransaction), so the upgrade never waits long while holding a table that a
-- worker's call needs; it tries again until lock_timeout has passed, then raises
-- 55P03 and changes nothing. Sequences cannot be locked and need not be: a call
-- that uses one has locked queues or records first.
do $do$
declare
    v_timeout text := pg_catalog.current_setting('lock_timeout');
    v_give_up timestamptz := pg_catalog.clock_timestamp() + v_timeout::interval;
begin
    perform pg_catalog.set_config('lock_timeout', '100ms', true);
    loop
        begin
            lock table pgclaim.queues, pgclaim.records, pgclaim.workers, pgclaim.config,
            pgclaim.queue_stats, pgclaim.stuck_records, pgclaim.worker_status
            in access exclusive mode;
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

-- Everything 0.1.0 made was owned by the installer, so its SECURITY DEFINER
-- functions ran with all of the installer's rights: it passes to pgclaim_owner.
-- A sequence that belongs to a table (records_id_seq, the identity of records)
-- passes with its table and cannot be given away alone: it is left out of the
-- loop, which would otherwise fail whenever pg_class lists it before its table
-- (after a VACUUM FULL, a GRANT or an ALTER TABLE ... SET of pgclaim.records).
alter schema pgclaim owner to pgclaim_owner;

do $do$
declare
    v_object record;
begin
    for v_object in
        select c.oid::regclass::text as name, c.relkind
        from pg_catalog.pg_class as c
        where c.relnamespace = 'pgclaim'::regnamespace and c.relkind in ('r', 'v', 'S')
          and not exists (
              select from pg_catalog.pg_depend as d
              where d.classid = 'pg_catalog.pg_class'::regclass and d.objid = c.oid
                and d.refclassid = 'pg_catalog.pg_class'::regclass
                and d.deptype in ('a', 'i')
          )
    loop
        execute pg_catalog.format(
            'alter %s %s owner to pgclaim_owner',
            case v_object.relkind when 'v' then 'view' when 'S' then 'sequence' else 'table' end,
            v_object.name);
    end loop;
    for v_object in
        select p.oid::regprocedure::text as name
        from pg_catalog.pg_proc as p where p.pronamespace = 'pgclaim'::regnamespace
    loop
        execute pg_catalog.format('alter function %s owner to pgclaim_owner', v_object.name);
    end loop;
    for v_object in
        select t.oid::regtype::text as name
        from pg_catalog.pg_type as t
        where t.typnamespace = 'pgclaim'::regnamespace and t.typtype in ('e', 'c')
          and (t.typrelid = 0 or exists (
              select from pg_catalog.pg_class as c where c.oid = t.typrelid and c.relkind = 'c'
          ))
    loop
        execute pg_catalog.format('alter type %s owner to pgclaim_owner', v_object.name);
    end loop;
end
$do$;

-- Functions whose signature changed: new settings and limits, parameters renamed.
drop function pgclaim.create_queue(text, interval, integer, interval, interval, interval);
drop function pgclaim.alter_queue(text, interval, integer, interval, interval, interval);
drop function pgclaim.configure(interval, integer);
drop function pgclaim._check_interval(text, interval, boolean);
drop function pgclaim._check_text(text, text, integer);
drop function pgclaim._token_groups(bigint[], bigint[]);

-- Lease tokens are random now (_lease_token), not drawn from a sequence.
-- lease_token_seq stays for this release: a 0.1.0 claim that waited on this
-- migration's locks still runs its 0.1.0 body, which draws from it. Nothing draws
-- from it afterwards; a later release drops it.
comment on sequence pgclaim.lease_token_seq is
'Unused since 0.2.0 (lease tokens are random); kept for claims of 0.1.0 during the upgrade.';

-- Limits per queue, filled with create_queue's defaults for existing queues (the
-- table keeps no default: create_queue is the one place they are written).
alter table pgclaim.queues
add column max_payload_bytes integer not null default 1048576,
add column max_lease interval not null default '12 hours',
add column min_priority integer not null default -1000,
add column max_priority integer not null default 1000,
add column max_batch integer not null default 10000,
add column restricted boolean not null default false;

-- 0.1.0 took any lease: a queue whose lease is longer than the default max_lease
-- gets its lease as max_lease, so that its claims stay within max_lease and
-- alter_queue accepts its settings (lease <= max_lease).
update pgclaim.queues as q set max_lease = q.lease
where q.lease > q.max_lease;

alter table pgclaim.queues
alter column max_payload_bytes drop default,
alter column max_lease drop default,
alter column min_priority drop default,
alter column max_priority drop default,
alter column max_batch drop default;

comment on table pgclaim.queues is 'One row per queue: its settings and limits.';

alter table pgclaim.records add column holder_role oid;

alter table pgclaim.workers add column owner_role oid;

comment on table pgclaim.workers is
'Registered workers, the role each runs as, and their last heartbeat.';

alter table pgclaim.config
add column max_ids integer not null default 10000 check (max_ids >= 1),
add column max_error_bytes integer not null default 8192 check (max_error_bytes >= 64),
add column max_info_bytes integer not null default 8192 check (max_info_bytes >= 2);

comment on table pgclaim.config is
'Cluster-wide settings: worker_timeout (a worker silent that long is dead), '
'sweep_limit (expired leases each claim_batch takes back), max_ids (ids in one call), '
'max_error_bytes (error texts are cut there), max_info_bytes (worker info).';

set local role pgclaim_owner;

create table pgclaim.queue_grants (
    queue text not null references pgclaim.queues (queue) on delete cascade,
    grantee oid not null,
    privilege text not null check (privilege in ('enqueue', 'claim', 'read')),
    granted_at timestamptz not null,
    primary key (queue, privilege, grantee)
);

comment on table pgclaim.queue_grants is
'Per-queue privileges (enqueue, claim, read) granted to roles with grant_queue.';

create table pgclaim.queue_totals (
    queue text not null references pgclaim.queues (queue) on delete cascade,
    slot smallint not null,
    completed bigint not null default 0,
    primary key (queue, slot)
) with (fillfactor = 50);

comment on table pgclaim.queue_totals is
'Completed records kept per queue, as counters in slots: their sum is the total.';

reset role;

-- Records finished by 0.1.0's workers since the move above (the tables are
-- locked now): the same statement once more, over the few rows it finds.
with moved as (
    delete from pgclaim.records as r
    where r.status in ('completed', 'failed', 'cancelled')
    returning
        r.id, r.queue, r.status, r.priority, r.run_at, r.payload, r.attempt,
        r.max_attempts, r.dedup_key, r.worker_id, r.lease_token, r.lease_for,
        r.enqueued_at, r.finished_at, r.last_error
)

insert into pgclaim.finished (
    id, queue, status, priority, run_at, payload, attempt, max_attempts, dedup_key,
    worker_id, lease_until, lease_token, lease_for, enqueued_at, finished_at, last_error
)
select
    m.id,
    m.queue,
    m.status,
    m.priority,
    m.run_at,
    m.payload,
    m.attempt,
    m.max_attempts,
    m.dedup_key,
    m.worker_id,
    null as lease_until,
    m.lease_token,
    m.lease_for,
    m.enqueued_at,
    coalesce(m.finished_at, m.enqueued_at) as finished_at,
    m.last_error
from moved as m
order by finished_at, m.id;

insert into pgclaim.queue_totals (queue, slot, completed)
select
    f.queue,
    0 as slot,
    pg_catalog.count(*) as completed
from pgclaim.finished as f
where f.status = 'completed'
group by f.queue;

drop index pgclaim.records_finished_brin;
drop index pgclaim.records_dead_idx;

set local role pgclaim_owner;

create index finished_at_brin on pgclaim.finished using brin (finished_at)
with (pages_per_range = 32, autosummarize = on);

create index finished_dead_idx on pgclaim.finished (queue, status, finished_at)
where status in ('failed', 'cancelled');

reset role;

alter table pgclaim.records
add constraint records_unfinished check (status in ('pending', 'running'));

comment on table pgclaim.records is
'Unfinished records (pending, running) of every queue; reach them through the pgclaim '
'functions only.';
