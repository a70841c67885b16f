-- pgclaim.queue_stats: one row per queue with its counts by state, from one
-- pass over the records (its cost grows with the table: keep finished records
-- purged). pending counts records due now, scheduled those due later;
-- oldest_pending_age is how long the longest-waiting due record has waited.
-- health() reads the cheap counts through the indexes instead.
create or replace view pgclaim.queue_stats as
with
clock as (
    select pgclaim._now() as now
),

counts as (
    select
        r.queue,
        pg_catalog.count(*) filter (
            where r.status = 'pending' and r.run_at <= clock.now
        ) as pending,
        pg_catalog.count(*) filter (
            where r.status = 'pending' and r.run_at > clock.now
        ) as scheduled,
        pg_catalog.count(*) filter (where r.status = 'running') as running,
        pg_catalog.count(*) filter (where r.status = 'completed') as completed,
        pg_catalog.count(*) filter (where r.status = 'failed') as failed,
        pg_catalog.count(*) filter (where r.status = 'cancelled') as cancelled,
        clock.now - pg_catalog.min(r.run_at) filter (
            where r.status = 'pending' and r.run_at <= clock.now
        ) as oldest_pending_age,
        pg_catalog.count(*) filter (
            where r.status = 'completed'
            and r.finished_at > clock.now - '1 minute'::interval
        ) as completed_last_minute
    from pgclaim.records as r
    cross join clock
    group by r.queue, clock.now
)

select
    q.queue,
    q.paused,
    coalesce(c.pending, 0) as pending,
    coalesce(c.scheduled, 0) as scheduled,
    coalesce(c.running, 0) as running,
    coalesce(c.completed, 0) as completed,
    coalesce(c.failed, 0) as failed,
    coalesce(c.cancelled, 0) as cancelled,
    c.oldest_pending_age,
    coalesce(c.completed_last_minute, 0) as completed_last_minute
from pgclaim.queues as q
left join counts as c on q.queue = c.queue;

comment on view pgclaim.queue_stats is
'Per queue: pending (due), scheduled (due later), running, completed, failed, cancelled, '
'oldest_pending_age, completed_last_minute.';
