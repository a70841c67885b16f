-- pgclaim.health(): one jsonb document for probes and operators: reachable,
-- server and schema versions, per-queue counts (all but the completed total,
-- which queue_stats gives) and oldest pending age, live and dead workers, stuck
-- records, the oldest open transaction (it holds back vacuum), pgclaim's tables'
-- dead row versions and last autovacuum, connection use, and an overall status:
-- 'failing' when records cannot be claimed (read-only server), 'degraded' with a
-- reason per problem, else 'ok'. Each problem is also in `problems`, an object
-- with its kind and the facts to act on; `reasons` holds their texts:
--   xact_holds_vacuum     a transaction of this database open past max_xact_age:
--                         its pid, age, application_name, state, user
--   dead_rows             a table with at least 10,000 dead row versions making up
--                         20 % or more of its rows: counts, last (auto)vacuum
--   pending_too_old       a queue's oldest due record waited past max_pending_age
--   backlog_growing       over the last 5 minutes more records arrived than
--                         finished, at that finish rate the due records take
--                         longer than max_pending_age to drain, and the oldest
--                         has waited a minute or more
--   paused_with_pending   a paused queue with due records
--   dead_worker_holding   a worker silent past config.worker_timeout that still
--                         holds running records (its id, silence, records per queue)
--   leases_not_reclaimed  running records whose lease expired longer than
--                         config.worker_timeout ago and nobody took back
--   dead_workers          registered workers silent past config.worker_timeout
--   connections           more than 90 % of max_connections in use
--   read_only             the server is in recovery (status failing)
-- The queues, their records and the worker ids named are those of the queues the
-- caller may read; the worker counts cover every worker.
-- Returns: jsonb. Raises: 22004/22023 a null or non-positive max_xact_age or
-- max_pending_age. Tables: queues, records, finished, workers, config (read).
-- The oldest transaction is read from pg_stat_activity: the installing role sees
-- other roles' transactions only with pg_read_all_stats.
create or replace function pgclaim.health(
    max_xact_age interval default '5 minutes',
    max_pending_age interval default '1 hour'
)
returns jsonb
language plpgsql
stable
security definer
set search_path = pg_catalog, pg_temp
set jit = off
-- The windows' bounds are parameters: plan each call with their values, so that
-- the BRIN index of finished records is used whatever a generic plan would guess.
set plan_cache_mode = force_custom_plan
as $fn$
declare
    -- The span over which arrival and finish rates are counted.
    v_window constant interval := '5 minutes'::interval;
    v_now timestamptz := pgclaim._now();
    v_me oid := pgclaim._caller();
    v_timeout interval;
    v_problems jsonb := '[]'::jsonb;
    v_failing boolean := false;
    v_queues jsonb := '{}'::jsonb;
    v_tables jsonb := '{}'::jsonb;
    v_alive integer;
    v_dead integer;
    v_stuck integer;
    v_xact record;
    v_xact_age interval;
    v_conn integer;
    v_max_conn integer := pg_catalog.current_setting('max_connections')::integer;
    v_row record;
begin
    perform pgclaim._check_interval('max_xact_age', health.max_xact_age, false);
    perform pgclaim._check_interval('max_pending_age', health.max_pending_age, false);
    select c.worker_timeout into v_timeout from pgclaim.config as c;

    -- Per queue, through the indexes (the window of finished records through
    -- finished_at_brin), so a probe stays cheap however many records are kept;
    -- arrivals still pending or running are counted in pgclaim.records, which
    -- holds only the work in flight.
    for v_row in
        with
        arrived as (
            select r.queue, pg_catalog.count(*) as n
            from pgclaim.records as r
            where r.enqueued_at > v_now - v_window
            group by r.queue
        ),

        finished as (
            select
                f.queue,
                pg_catalog.count(*) as n,
                pg_catalog.count(*) filter (where f.enqueued_at > v_now - v_window) as arrived
            from pgclaim.finished as f
            where f.finished_at > v_now - v_window and f.finished_at <= v_now
            group by f.queue
        ),

        expired as (
            select
                r.queue, pg_catalog.count(*) as n, pg_catalog.min(r.lease_until) as oldest
            from pgclaim.records as r
            where r.status = 'running' and r.lease_until < v_now
            group by r.queue
        )

        select
            c.queue, c.paused, c.pending, c.scheduled, c.running, c.failed, c.cancelled,
            c.oldest_pending_age, c.completed_last_minute,
            coalesce(a.n, 0) + coalesce(f.arrived, 0) as arrived,
            coalesce(f.n, 0) as finished,
            coalesce(e.n, 0) as expired, e.oldest as oldest_expired
        from pgclaim._queue_counts(false) as c
        left join arrived as a on c.queue = a.queue
        left join finished as f on c.queue = f.queue
        left join expired as e on c.queue = e.queue
    loop
        v_queues := v_queues || pg_catalog.jsonb_build_object(v_row.queue,
            pg_catalog.jsonb_build_object(
                'paused', v_row.paused, 'pending', v_row.pending,
                'scheduled', v_row.scheduled, 'running', v_row.running,
                'failed', v_row.failed, 'cancelled', v_row.cancelled,
                'oldest_pending_age_s',
                pg_catalog.round(extract(epoch from v_row.oldest_pending_age)::numeric, 3),
                'completed_last_minute', v_row.completed_last_minute,
                'arrived_last_5m', v_row.arrived, 'finished_last_5m', v_row.finished,
                'expired_leases', v_row.expired));
        if v_row.oldest_pending_age > health.max_pending_age and not v_row.paused then
            v_problems := v_problems || pg_catalog.jsonb_build_object(
                'kind', 'pending_too_old', 'queue', v_row.queue,
                'oldest_pending_age_s',
                pg_catalog.round(extract(epoch from v_row.oldest_pending_age)::numeric, 3),
                'reason', pg_catalog.format(
                    'queue %s: oldest pending record has waited %s', v_row.queue,
                    pg_catalog.date_trunc('second', v_row.oldest_pending_age)));
        end if;
        if v_row.paused and v_row.pending > 0 then
            v_problems := v_problems || pg_catalog.jsonb_build_object(
                'kind', 'paused_with_pending', 'queue', v_row.queue, 'pending', v_row.pending,
                'reason', pg_catalog.format(
                    'queue %s is paused with %s due record(s): pgclaim.resume_queue(%L) '
                    'lets workers claim them', v_row.queue, v_row.pending, v_row.queue));
        end if;
        -- Growing: more arrived than finished over the window, and at the pace the
        -- queue finished records in it, its due records take longer than
        -- max_pending_age to drain (for ever when none finished). A burst being taken
        -- in is no reason: the oldest due record must have waited a minute.
        if not v_row.paused and v_row.arrived > v_row.finished
           and v_row.oldest_pending_age >= '1 minute'::interval
           and v_row.pending * v_window > v_row.finished * health.max_pending_age then
            v_problems := v_problems || pg_catalog.jsonb_build_object(
                'kind', 'backlog_growing', 'queue', v_row.queue,
                'arrived', v_row.arrived, 'finished', v_row.finished,
                'pending', v_row.pending, 'window_s', extract(epoch from v_window),
                'reason', pg_catalog.format(
                    'queue %s: backlog growing: %s record(s) arrived and %s finished in the '
                    'last %s (%s/s in, %s/s out), %s due: add workers or find what slows '
                    'them', v_row.queue, v_row.arrived, v_row.finished, v_window,
                    pg_catalog.round(v_row.arrived / extract(epoch from v_window), 2),
                    pg_catalog.round(v_row.finished / extract(epoch from v_window), 2),
                    v_row.pending));
        end if;
        if v_row.oldest_expired < v_now - v_timeout then
            v_problems := v_problems || pg_catalog.jsonb_build_object(
                'kind', 'leases_not_reclaimed', 'queue', v_row.queue,
                'expired', v_row.expired,
                'oldest_expired_s',
                pg_catalog.round(extract(epoch from v_now - v_row.oldest_expired)::numeric, 3),
                'reason', pg_catalog.format(
                    'queue %s: %s expired lease(s) not taken back, the oldest expired %s ago: '
                    'claim_batch and reclaim_orphans take them back (is any worker or '
                    'pg_cron job calling them?)', v_row.queue, v_row.expired,
                    pg_catalog.date_trunc('second', v_now - v_row.oldest_expired)));
        end if;
        -- (flow control: a queue pinned at its concurrency cap is reported here)
    end loop;

    select
        pg_catalog.count(*) filter (where w.last_seen >= v_now - v_timeout),
        pg_catalog.count(*) filter (where w.last_seen < v_now - v_timeout)
    into v_alive, v_dead
    from pgclaim.workers as w;
    -- Dead workers that still hold records (a worker id counts only for the records
    -- its own role claimed, as in _reclaim), in the queues the caller may read.
    for v_row in
        select
            w.worker_id, v_now - w.last_seen as silent,
            pg_catalog.sum(h.n) as held,
            pg_catalog.jsonb_object_agg(h.queue, h.n) as per_queue
        from pgclaim.workers as w
        cross join lateral (
            select r.queue, pg_catalog.count(*) as n
            from pgclaim.records as r
            where r.status = 'running' and r.worker_id = w.worker_id
              and (w.owner_role = r.holder_role
                   or w.owner_role is null or r.holder_role is null)
            group by r.queue
        ) as h
        inner join pgclaim.queues as q on h.queue = q.queue
        where w.last_seen < v_now - v_timeout
          and pgclaim._allowed(q.queue, q.restricted, 'read', v_me)
        group by w.worker_id, w.last_seen
        order by w.last_seen
    loop
        v_problems := v_problems || pg_catalog.jsonb_build_object(
            'kind', 'dead_worker_holding', 'worker_id', v_row.worker_id,
            'silent_s', pg_catalog.round(extract(epoch from v_row.silent)::numeric, 3),
            'held', v_row.held, 'queues', v_row.per_queue,
            'reason', pg_catalog.format(
                'worker %s has been silent for %s and still holds %s record(s) (%s): '
                'reclaim_orphans takes them back', v_row.worker_id,
                pg_catalog.date_trunc('second', v_row.silent), v_row.held,
                (select pg_catalog.string_agg(pg_catalog.format('%s: %s', k.key, k.value), ', '
                     order by k.key)
                 from pg_catalog.jsonb_each_text(v_row.per_queue) as k)));
    end loop;
    if v_dead > 0 then
        v_problems := v_problems || pg_catalog.jsonb_build_object(
            'kind', 'dead_workers', 'dead', v_dead,
            'reason', pg_catalog.format('%s dead worker(s)', v_dead));
    end if;

    select pg_catalog.count(*) into v_stuck from pgclaim.stuck_records;

    select pg_catalog.count(*) into v_conn
    from pg_catalog.pg_stat_activity as a
    where a.backend_type = 'client backend';
    -- Only transactions of this database hold back the vacuum of its tables.
    select
        a.pid, v_now - a.xact_start as age, a.application_name, a.state,
        a.usename::text as usename
    into v_xact
    from pg_catalog.pg_stat_activity as a
    where a.datname = pg_catalog.current_database()
      and (a.backend_xmin is not null or a.backend_xid is not null)
    order by a.xact_start
    limit 1;
    v_xact_age := v_xact.age;
    if v_xact_age > health.max_xact_age then
        v_problems := v_problems || pg_catalog.jsonb_build_object(
            'kind', 'xact_holds_vacuum', 'pid', v_xact.pid,
            'age_s', pg_catalog.round(extract(epoch from v_xact_age)::numeric, 3),
            'application_name', v_xact.application_name, 'state', v_xact.state,
            'user', v_xact.usename,
            'reason', pg_catalog.format(
                'a transaction open for %s holds back vacuum: pid %s, application_name %s, '
                'state %s, user %s (pg_terminate_backend(%s) ends it)',
                pg_catalog.date_trunc('second', v_xact_age), v_xact.pid,
                pg_catalog.quote_literal(v_xact.application_name),
                coalesce(v_xact.state, 'unknown'), coalesce(v_xact.usename, 'unknown'),
                v_xact.pid));
    end if;

    for v_row in
        select
            s.relname::text as name, s.n_live_tup as live, s.n_dead_tup as dead,
            s.last_autovacuum, s.last_vacuum, s.autovacuum_count
        from pg_catalog.pg_stat_user_tables as s
        where s.schemaname = 'pgclaim'
        order by s.relname
    loop
        v_tables := v_tables || pg_catalog.jsonb_build_object(v_row.name,
            pg_catalog.jsonb_build_object(
                'live', v_row.live, 'dead', v_row.dead,
                'last_autovacuum', v_row.last_autovacuum, 'last_vacuum', v_row.last_vacuum,
                'autovacuum_count', v_row.autovacuum_count));
        if v_row.dead >= 10000 and v_row.dead >= 0.2 * (v_row.live + v_row.dead) then
            v_problems := v_problems || pg_catalog.jsonb_build_object(
                'kind', 'dead_rows', 'table', 'pgclaim.' || v_row.name,
                'live', v_row.live, 'dead', v_row.dead,
                'last_autovacuum', v_row.last_autovacuum, 'last_vacuum', v_row.last_vacuum,
                'reason', pg_catalog.format(
                    'table pgclaim.%s: %s dead row version(s), %s%% of its rows; last '
                    'autovacuum %s: a transaction holding back vacuum, or autovacuum off or '
                    'too slow for it', v_row.name, v_row.dead,
                    pg_catalog.round(100.0 * v_row.dead / (v_row.live + v_row.dead)),
                    coalesce(v_row.last_autovacuum::text, 'never')));
        end if;
    end loop;

    if v_conn > v_max_conn * 0.9 then
        v_problems := v_problems || pg_catalog.jsonb_build_object(
            'kind', 'connections', 'used', v_conn, 'max', v_max_conn,
            'reason', pg_catalog.format('%s of %s connections in use', v_conn, v_max_conn));
    end if;

    if pg_catalog.pg_is_in_recovery() then
        v_failing := true;
        v_problems := v_problems || pg_catalog.jsonb_build_object(
            'kind', 'read_only', 'reason', 'server is read-only (in recovery)');
    end if;

    return pg_catalog.jsonb_build_object(
        'status', case
            when v_failing then 'failing'
            when pg_catalog.jsonb_array_length(v_problems) > 0 then 'degraded'
            else 'ok'
        end,
        'reasons', coalesce((
            select pg_catalog.jsonb_agg(p.value -> 'reason' order by p.n)
            from pg_catalog.jsonb_array_elements(v_problems) with ordinality as p (value, n)
        ), '[]'::jsonb),
        'problems', v_problems,
        'reachable', true,
        'database', pg_catalog.current_database(),
        'server_version', pg_catalog.current_setting('server_version'),
        'schema_version', pgclaim.schema_version(),
        'checked_at', v_now,
        'queues', v_queues,
        'workers', pg_catalog.jsonb_build_object('alive', v_alive, 'dead', v_dead),
        'stuck_records', v_stuck,
        'oldest_xact_age_s',
        pg_catalog.round(coalesce(extract(epoch from v_xact_age), 0)::numeric, 3),
        'oldest_xact', case when v_xact.pid is null then null else pg_catalog.jsonb_build_object(
            'pid', v_xact.pid,
            'age_s', pg_catalog.round(extract(epoch from v_xact_age)::numeric, 3),
            'application_name', v_xact.application_name, 'state', v_xact.state,
            'user', v_xact.usename) end,
        'tables', v_tables,
        'connections', pg_catalog.jsonb_build_object('used', v_conn, 'max', v_max_conn)
    );
end;
$fn$;

comment on function pgclaim.health(interval, interval) is
'Health document (jsonb): status ok/degraded/failing with reasons and problems (each with '
'the facts to act on), versions, per-queue counts and rates, workers alive and dead, '
'stuck records, oldest transaction, tables'' dead rows, connections.';
