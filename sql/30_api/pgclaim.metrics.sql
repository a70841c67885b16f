-- pgclaim.metrics(): what a monitoring scrape needs, one row per value, named as
-- the Prometheus exporter (pgclaim exporter) shows it without its pgclaim_ prefix:
-- per queue the caller may read (queue set, status set for records):
--   records (gauge; status pending, scheduled, running, and blocked: waiting behind
--   the head of their FIFO group), oldest_pending_age_seconds
--   (gauge, 0 when none is due), queue_paused (gauge, 0 or 1), and the counters
--   claims_total, completions_total, failures_total, retries_total,
--   reclaims_total, releases_total, dead_letters_total, cancellations_total;
-- and for the whole database (queue null): workers (gauge; status alive, dead).
-- The counters only grow (they survive restarts of the exporter, purges and
-- retry_failed) and are read in one snapshot with the running records: claims is
-- every attempt that ended (completions, failures, reclaims, releases, records
-- cancelled while running) plus the records running now, so no claim adds to a
-- counter. The cost follows the unfinished records, the queues and the workers:
-- pgclaim.finished is not read, however many finished records it keeps.
-- Returns: rows (metric, queue, status, value). Raises: nothing.
-- Tables: queues, records, queue_totals, workers, config, queue_grants (read).
create or replace function pgclaim.metrics()
returns table (metric text, queue text, status text, value double precision)
language sql
stable
security definer
set search_path = pg_catalog, pg_temp
set jit = off
as $fn$
    with
    clock as (
        select pgclaim._now() as now, pgclaim._caller() as me
    ),

    totals as (
        select
            t.queue,
            pg_catalog.sum(t.completions) as completions,
            pg_catalog.sum(t.failures) as failures,
            pg_catalog.sum(t.retries) as retries,
            pg_catalog.sum(t.reclaims) as reclaims,
            pg_catalog.sum(t.releases) as releases,
            pg_catalog.sum(t.dead_letters) as dead_letters,
            pg_catalog.sum(t.cancellations) as cancellations,
            pg_catalog.sum(t.cancelled_running) as cancelled_running
        from pgclaim.queue_totals as t
        group by t.queue
    ),

    per_queue as (
        select
            d.queue,
            d.paused,
            d.pending,
            d.scheduled,
            d.running,
            d.oldest_pending_age,
            d.blocked,
            coalesce(t.completions, 0) as completions,
            coalesce(t.failures, 0) as failures,
            coalesce(t.retries, 0) as retries,
            coalesce(t.reclaims, 0) as reclaims,
            coalesce(t.releases, 0) as releases,
            coalesce(t.dead_letters, 0) as dead_letters,
            coalesce(t.cancellations, 0) as cancellations,
            coalesce(t.cancelled_running, 0) as cancelled_running
        from clock
        cross join lateral pgclaim._depths(clock.now, clock.me) as d
        left join totals as t on d.queue = t.queue
    )

    select m.metric, p.queue, m.status, m.value
    from per_queue as p
    cross join lateral (
        values
        ('records', 'pending', p.pending::double precision),
        ('records', 'scheduled', p.scheduled::double precision),
        ('records', 'running', p.running::double precision),
        ('records', 'blocked', p.blocked::double precision),
        (
            'oldest_pending_age_seconds', null,
            coalesce(extract(epoch from p.oldest_pending_age), 0)::double precision
        ),
        ('queue_paused', null, case when p.paused then 1 else 0 end::double precision),
        (
            'claims_total', null,
            (
                p.completions + p.failures + p.reclaims + p.releases + p.cancelled_running
                + p.running
            )::double precision
        ),
        ('completions_total', null, p.completions::double precision),
        ('failures_total', null, p.failures::double precision),
        ('retries_total', null, p.retries::double precision),
        ('reclaims_total', null, p.reclaims::double precision),
        ('releases_total', null, p.releases::double precision),
        ('dead_letters_total', null, p.dead_letters::double precision),
        ('cancellations_total', null, p.cancellations::double precision)
    ) as m (metric, status, value)

    union all

    select 'workers', null, w.status, w.n::double precision
    from (
        select
            pg_catalog.count(*) filter (
                where k.last_seen >= clock.now - c.worker_timeout
            ) as alive,
            pg_catalog.count(*) filter (
                where k.last_seen < clock.now - c.worker_timeout
            ) as dead
        from clock
        cross join pgclaim.config as c
        left join pgclaim.workers as k on true
    ) as a
    cross join lateral (values ('alive', a.alive), ('dead', a.dead)) as w (status, n);
$fn$;

comment on function pgclaim.metrics() is
'Per queue the caller may read: records by status, oldest pending age, paused, and the '
'counters claims, completions, failures, retries, reclaims, releases, dead letters, '
'cancellations (ever growing); workers alive and dead. Rows (metric, queue, status, value).';
