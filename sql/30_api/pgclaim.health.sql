-- pgclaim.health(): one jsonb document for probes and operators: reachable,
-- server and schema versions, per-queue counts (all but the completed total,
-- which queue_stats gives) and oldest pending age, live and
-- dead workers, stuck records, the oldest open transaction (it holds back vacuum),
-- connection use, and an overall status: 'failing' when records cannot be
-- claimed (read-only server), 'degraded' with a reason per problem, else 'ok'.
-- The queues (and stuck records) are those the caller may read; the worker
-- counts cover every worker.
-- Returns: jsonb. Raises: 22004/22023 a null or non-positive max_xact_age or
-- max_pending_age. Tables: queues, records, workers, config (read).
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
as $fn$
declare
    v_reasons text [] := '{}'::text [];
    v_failing boolean := false;
    v_queues jsonb := '{}'::jsonb;
    v_alive integer;
    v_dead integer;
    v_stuck integer;
    v_xact_age interval;
    v_conn integer;
    v_max_conn integer := pg_catalog.current_setting('max_connections')::integer;
    v_row record;
begin
    perform pgclaim._check_interval('max_xact_age', health.max_xact_age, false);
    perform pgclaim._check_interval('max_pending_age', health.max_pending_age, false);
    -- Per queue, through the indexes only (no pass over finished records), so a
    -- probe stays cheap however many records the table keeps.
    for v_row in
        select
            c.queue, c.paused, c.pending, c.scheduled, c.running, c.failed, c.cancelled,
            c.oldest_pending_age, c.completed_last_minute
        from pgclaim._queue_counts(false) as c
    loop
        v_queues := v_queues || pg_catalog.jsonb_build_object(v_row.queue,
            pg_catalog.jsonb_build_object(
                'paused', v_row.paused, 'pending', v_row.pending,
                'scheduled', v_row.scheduled, 'running', v_row.running,
                'failed', v_row.failed, 'cancelled', v_row.cancelled,
                'oldest_pending_age_s',
                pg_catalog.round(extract(epoch from v_row.oldest_pending_age)::numeric, 3),
                'completed_last_minute', v_row.completed_last_minute));
        if v_row.oldest_pending_age > health.max_pending_age and not v_row.paused then
            v_reasons := v_reasons || pg_catalog.format(
                'queue %s: oldest pending record has waited %s', v_row.queue,
                pg_catalog.date_trunc('second', v_row.oldest_pending_age));
        end if;
    end loop;

    select
        pg_catalog.count(*) filter (where w.last_seen >= pgclaim._now() - c.worker_timeout),
        pg_catalog.count(*) filter (where w.last_seen < pgclaim._now() - c.worker_timeout)
    into v_alive, v_dead
    from pgclaim.workers as w cross join pgclaim.config as c;
    if v_dead > 0 then
        v_reasons := v_reasons || pg_catalog.format('%s dead worker(s)', v_dead);
    end if;

    select pg_catalog.count(*) into v_stuck from pgclaim.stuck_records;
    if v_stuck > 0 then
        v_reasons := v_reasons || pg_catalog.format('%s stuck record(s)', v_stuck);
    end if;

    select pg_catalog.count(*) into v_conn
    from pg_catalog.pg_stat_activity as a
    where a.backend_type = 'client backend';
    -- Only transactions of this database hold back the vacuum of its tables.
    select pg_catalog.max(pgclaim._now() - a.xact_start) into v_xact_age
    from pg_catalog.pg_stat_activity as a
    where a.datname = pg_catalog.current_database()
      and (a.backend_xmin is not null or a.backend_xid is not null);
    if v_xact_age > health.max_xact_age then
        v_reasons := v_reasons || pg_catalog.format(
            'a transaction open for %s holds back vacuum',
            pg_catalog.date_trunc('second', v_xact_age));
    end if;
    if v_conn > v_max_conn * 0.9 then
        v_reasons := v_reasons || pg_catalog.format(
            '%s of %s connections in use', v_conn, v_max_conn);
    end if;

    if pg_catalog.pg_is_in_recovery() then
        v_failing := true;
        v_reasons := v_reasons || 'server is read-only (in recovery)'::text;
    end if;

    return pg_catalog.jsonb_build_object(
        'status', case
            when v_failing then 'failing'
            when pg_catalog.cardinality(v_reasons) > 0 then 'degraded'
            else 'ok'
        end,
        'reasons', pg_catalog.to_jsonb(v_reasons),
        'reachable', true,
        'database', pg_catalog.current_database(),
        'server_version', pg_catalog.current_setting('server_version'),
        'schema_version', pgclaim.schema_version(),
        'checked_at', pgclaim._now(),
        'queues', v_queues,
        'workers', pg_catalog.jsonb_build_object('alive', v_alive, 'dead', v_dead),
        'stuck_records', v_stuck,
        'oldest_xact_age_s',
        pg_catalog.round(coalesce(extract(epoch from v_xact_age), 0)::numeric, 3),
        'connections', pg_catalog.jsonb_build_object('used', v_conn, 'max', v_max_conn)
    );
end;
$fn$;

comment on function pgclaim.health(interval, interval) is
'Health document (jsonb): status ok/degraded/failing with reasons, versions, per-queue '
'counts, workers alive and dead, stuck records, oldest transaction, connections.';
