-- pgclaim.queue_stats: one row per queue with its counts by state, read through
-- the partial indexes. pending counts records due now, scheduled those due later;
-- oldest_pending_age is how long the longest-waiting due record has waited.
create or replace view pgclaim.queue_stats as
select
    q.queue,
    q.paused,
    p.pending,
    p.scheduled,
    (
        select pg_catalog.count(*) from pgclaim.records as r
        where r.queue = q.queue and r.status = 'running'
    ) as running,
    f.completed,
    f.failed,
    f.cancelled,
    p.oldest_pending_age,
    f.completed_last_minute
from pgclaim.queues as q
cross join
    lateral (
        select
            pg_catalog.count(*) filter (where r.run_at <= pgclaim._now()) as pending,
            pg_catalog.count(*) filter (where r.run_at > pgclaim._now()) as scheduled,
            pgclaim._now() - pg_catalog.min(r.run_at) filter (
                where r.run_at <= pgclaim._now()
            ) as oldest_pending_age
        from pgclaim.records as r
        where r.queue = q.queue and r.status = 'pending'
    ) as p
cross join lateral (
    select
        pg_catalog.count(*) filter (where r.status = 'completed') as completed,
        pg_catalog.count(*) filter (where r.status = 'failed') as failed,
        pg_catalog.count(*) filter (where r.status = 'cancelled') as cancelled,
        pg_catalog.count(*) filter (
            where r.status = 'completed'
            and r.finished_at > pgclaim._now() - '1 minute'::interval
        ) as completed_last_minute
    from pgclaim.records as r
    where r.queue = q.queue and r.status in ('completed', 'failed', 'cancelled')
) as f;

comment on view pgclaim.queue_stats is
'Per queue: pending (due), scheduled (due later), running, completed, failed, cancelled, '
'oldest_pending_age, completed_last_minute.';
