-- pgclaim.latency(queue, since): how long the queue's records waited and ran,
-- over the records that finished (completed or failed: dead letters) in the last
-- `since` (by pgclaim._now()). Two rows, measure 'wait' (enqueued_at to the first
-- claim, so a delay asked with run_at counts) and 'run' (the last claim to the
-- finish): how many records, the p50, p95, p99 (percentile_disc: a duration one
-- of them took) and max, the sum in seconds, and a cumulative histogram for an
-- exporter: bucket_count[i] records took at most bucket_le[i] seconds, the last
-- bound being Infinity. Both rows come back with records 0 and null percentiles
-- when nothing finished. Cancelled records and those claimed before 0.3.0 (no
-- claim times) are left out.
-- Cost: the window's rows only, through finished_at_brin (records enter
-- pgclaim.finished in the order they finish); the window of every queue is read
-- and filtered by queue, so it grows with the records finished in `since`, never
-- with the finished records kept.
-- Returns: table (measure, records, p50, p95, p99, max, sum_seconds, bucket_le,
-- bucket_count). Raises: PC001 unknown queue; 42501 no read privilege on a
-- restricted queue; 22004 null since; 22023 since not positive or over 100 years.
-- Tables: queues, queue_grants, finished (read).
create or replace function pgclaim.latency(queue text, since interval default '5 minutes')
returns table (
    measure text,
    records bigint,
    p50 interval,
    p95 interval,
    p99 interval,
    max interval,
    sum_seconds double precision,
    bucket_le double precision[],
    bucket_count bigint[]
)
language plpgsql
stable
security definer
set search_path = pg_catalog, pg_temp
-- The window bound is a parameter: plan each call with its value, so that the
-- BRIN index is used whatever a generic plan would guess.
set plan_cache_mode = force_custom_plan
as $fn$
declare
    v_q pgclaim.queues;
    v_now timestamptz;
    -- Upper bounds in seconds (Prometheus' defaults, then minutes to an hour).
    v_le constant double precision [] := '{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, '
    '5, 10, 30, 60, 120, 300, 600, 1800, 3600, Infinity}'::double precision [];
    v_neg double precision [];
begin
    v_q := pgclaim._queue(latency.queue);
    perform pgclaim._require(v_q, 'read', pgclaim._caller());
    perform pgclaim._check_interval('since', latency.since, false, false);
    v_now := pgclaim._now();
    -- The bounds negated, in ascending order: width_bucket(-s, v_neg) counts the
    -- bounds >= s, which gives the first bucket of a sample in one pass.
    select pg_catalog.array_agg(-b.le order by b.le desc) into v_neg
    from pg_catalog.unnest(v_le) as b (le);
    return query
    with
    finished_in_window as materialized (
        select f.enqueued_at, f.first_claimed_at, f.claimed_at, f.finished_at
        from pgclaim.finished as f
        where f.finished_at > v_now - latency.since
          and f.finished_at <= v_now
          and f.queue = latency.queue
          and f.status in ('completed', 'failed')
          and f.first_claimed_at is not null
    ),

    -- Seconds as double precision (date_part: extract gives numeric, slower per row).
    samples as (
        select
            'wait'::text as measure,
            pg_catalog.date_part('epoch', w.first_claimed_at - w.enqueued_at) as secs
        from finished_in_window as w
        union all
        select 'run'::text, pg_catalog.date_part('epoch', w.finished_at - w.claimed_at)
        from finished_in_window as w
    ),

    stats as (
        select
            s.measure,
            pg_catalog.count(*) as records,
            pg_catalog.percentile_disc(0.5) within group (order by s.secs) as p50,
            pg_catalog.percentile_disc(0.95) within group (order by s.secs) as p95,
            pg_catalog.percentile_disc(0.99) within group (order by s.secs) as p99,
            pg_catalog.max(s.secs) as max,
            pg_catalog.sum(s.secs) as sum_seconds
        from samples as s
        group by s.measure
    ),

    -- How many samples have each bound as their first (smallest) bucket.
    firsts as materialized (
        select
            s.measure,
            pg_catalog.cardinality(v_le) + 1 - pg_catalog.width_bucket(-s.secs, v_neg) as i,
            pg_catalog.count(*) as n
        from samples as s
        group by 1, 2
    ),

    measures as (
        select m.measure, m.n from (values ('wait'::text, 1), ('run', 2)) as m (measure, n)
    ),

    cumulative as (
        select
            m.measure,
            pg_catalog.array_agg(coalesce((
                select pg_catalog.sum(f.n) from firsts as f
                where f.measure = m.measure and f.i <= g.i
            ), 0)::bigint order by g.i) as counts
        from measures as m
        cross join pg_catalog.generate_subscripts(v_le, 1) as g (i)
        group by m.measure
    )

    select
        m.measure, coalesce(s.records, 0), pg_catalog.make_interval(secs => s.p50),
        pg_catalog.make_interval(secs => s.p95), pg_catalog.make_interval(secs => s.p99),
        pg_catalog.make_interval(secs => s.max), coalesce(s.sum_seconds, 0), v_le, c.counts
    from measures as m
    inner join cumulative as c on m.measure = c.measure
    left join stats as s on m.measure = s.measure
    order by m.n;
end;
$fn$;

comment on function pgclaim.latency(text, interval) is
'Wait (enqueue to first claim) and run (last claim to finish) times of the records of a '
'queue finished in the last since: p50, p95, p99, max and cumulative histogram buckets.';
