-- pgclaim._depths(now, me): the unfinished records of each queue that me
-- may read (_allowed), counted through the partial indexes of pgclaim.records
-- only (pending and scheduled: records_claim_idx, running: records_lease_idx), so
-- that the cost follows the work in flight, never the finished records kept.
-- pending counts the records due at now, scheduled those due later, blocked
-- those waiting behind the head of their FIFO group (run_at 'infinity');
-- oldest_pending_age is how long the longest-waiting due record has waited.
-- Called by _queue_counts (queue_stats, health) and metrics, which are security
-- definer: it runs as their owner.
-- Returns: one row per queue, in queue order. Raises: nothing.
-- Tables: queues, records (read).
create or replace function pgclaim._depths(now timestamptz, me oid)
returns table (
    queue text,
    paused boolean,
    pending bigint,
    scheduled bigint,
    running bigint,
    oldest_pending_age interval,
    blocked bigint
)
language sql
stable
set search_path = pg_catalog, pg_temp
as $fn$
    select
        q.queue,
        q.paused,
        p.pending,
        p.scheduled,
        ru.running,
        p.oldest_pending_age,
        p.blocked
    from pgclaim.queues as q
    cross join lateral (
        select
            pg_catalog.count(*) filter (where r.run_at <= _depths.now) as pending,
            pg_catalog.count(*) filter (
                where r.run_at > _depths.now and r.run_at < 'infinity'
            ) as scheduled,
            pg_catalog.count(*) filter (where r.run_at = 'infinity') as blocked,
            _depths.now - pg_catalog.min(r.run_at) filter (
                where r.run_at <= _depths.now
            ) as oldest_pending_age
        from pgclaim.records as r
        where r.queue = q.queue and r.status = 'pending'
    ) as p
    cross join lateral (
        select pg_catalog.count(*) as running
        from pgclaim.records as r
        where r.queue = q.queue and r.status = 'running'
    ) as ru
    where pgclaim._allowed(q.queue, q.restricted, 'read', _depths.me)
    order by q.queue;
$fn$;

comment on function pgclaim._depths(timestamptz, oid) is
'Internal: per queue the caller may read, pending, scheduled, running and blocked records '
'and the oldest pending age, from the partial indexes of pgclaim.records.';
