-- pgclaim._queue_counts(with_completed): the per-queue counts that queue_stats
-- shows and health() reports, defined once. Every count reads a partial index or
-- a counter, so that it costs the same however many finished records are kept
-- (pending, scheduled, blocked and running: _depths, failed and cancelled:
-- finished_dead_idx, completed in the last minute: finished_at_brin, the completed
-- total: the queue's counters in queue_totals); health() leaves the completed
-- total out (with_completed false: null).
-- Only the queues the caller may read (_allowed, in _depths) are counted.
-- Security definer: the view queue_stats calls it in its reader's name, and
-- its readers do not reach the tables.
-- Returns: one row per queue, in queue order. Raises: nothing.
-- Tables: queues, records, finished, queue_totals (read).
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
    completed_last_minute bigint,
    blocked bigint
)
language sql
stable
security definer
set search_path = pg_catalog, pg_temp
as $fn$
    with
    clock as (
        select pgclaim._now() as now, pgclaim._caller() as me
    ),

    completed as (
        select t.queue, pg_catalog.sum(t.completed)::bigint as n
        from pgclaim.queue_totals as t
        where _queue_counts.with_completed
        group by t.queue
    )

    select
        q.queue,
        q.paused,
        q.pending,
        q.scheduled,
        q.running,
        case when _queue_counts.with_completed then coalesce(c.n, 0) end,
        d.failed,
        d.cancelled,
        q.oldest_pending_age,
        l.completed_last_minute,
        q.blocked
    from clock
    cross join lateral pgclaim._depths(clock.now, clock.me) as q
    cross join lateral (
        select
            pg_catalog.count(*) filter (where r.status = 'failed') as failed,
            pg_catalog.count(*) filter (where r.status = 'cancelled') as cancelled
        from pgclaim.finished as r
        where r.queue = q.queue and r.status in ('failed', 'cancelled')
    ) as d
    cross join lateral (
        select pg_catalog.count(*) as completed_last_minute
        from pgclaim.finished as r
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
