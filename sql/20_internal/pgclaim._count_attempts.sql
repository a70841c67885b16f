-- pgclaim._count_attempts(kind, queues, statuses): adds attempts that ended
-- without a completion to the metrics' counters of their queues (queue_totals,
-- the slot of this transaction, _slot): kind 'fail' (fail, fail_batch: failures, and
-- retries for those whose status is pending again), 'reclaim' (_reclaim:
-- reclaims) or 'release' (release, deregister_worker: releases). queues holds one
-- element per record (statuses too, for 'fail'). Dead letters and cancellations
-- are counted by _finish, completions too.
-- Callers run it as a statement of its own after the one that changed the records:
-- _finish may have updated the same slot row within that statement.
-- Returns: nothing. Raises: nothing. Tables: queue_totals (upsert).
create or replace function pgclaim._count_attempts(
    kind text, queues text[], statuses pgclaim.status[] default null
)
returns void
language plpgsql
volatile
set search_path = pg_catalog, pg_temp
as $fn$
declare
    v_slot smallint := pgclaim._slot();
begin
    insert into pgclaim.queue_totals as t (queue, slot, failures, retries, reclaims, releases)
    select
        u.queue,
        v_slot,
        pg_catalog.count(*) filter (where _count_attempts.kind = 'fail'),
        pg_catalog.count(*) filter (where _count_attempts.kind = 'fail' and u.status = 'pending'),
        pg_catalog.count(*) filter (where _count_attempts.kind = 'reclaim'),
        pg_catalog.count(*) filter (where _count_attempts.kind = 'release')
    from rows from (
        pg_catalog.unnest(_count_attempts.queues), pg_catalog.unnest(_count_attempts.statuses)
    ) as u (queue, status)
    where u.queue is not null
    group by u.queue
    on conflict on constraint queue_totals_pkey do update
    set
        failures = t.failures + excluded.failures,
        retries = t.retries + excluded.retries,
        reclaims = t.reclaims + excluded.reclaims,
        releases = t.releases + excluded.releases;
end;
$fn$;

comment on function pgclaim._count_attempts(text, text[], pgclaim.status[]) is
'Internal: counts attempts that ended without a completion (fail, reclaim, release) '
'in queue_totals, per queue.';
