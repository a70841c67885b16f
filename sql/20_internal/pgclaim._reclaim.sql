-- pgclaim._reclaim(queue, max_records, dead_workers): takes back running records
-- whose lease expired (of one queue, or of all when queue is null) and, with
-- dead_workers, those held by registered workers silent for longer than
-- config.worker_timeout (a worker id counts only for the records its own role
-- claimed, so registering another role's worker id and falling silent takes
-- nothing away from it). They go back to pending (keeping their place in the
-- queue) or, out of attempts, to failed, through _end_attempt.
-- Returns: how many records it took back.
-- Raises: nothing. Tables: records (update), workers and config (read),
-- queue_totals (upsert).
-- Rows locked by others are skipped, so any number of callers may run at once.
create or replace function pgclaim._reclaim(
    queue text, max_records integer, dead_workers boolean
)
returns integer
language plpgsql
volatile
set search_path = pg_catalog, pg_temp
as $fn$
declare
    v_now timestamptz := pgclaim._now();
    v_timeout interval;
    v_ids bigint [];
    v_errors text [];
    v_count integer := 0;
    v_more integer;
    v_queues text [];
    v_more_queues text [];
begin
    if max_records <= 0 then
        return 0;
    end if;
    if dead_workers then
        select c.worker_timeout into v_timeout from pgclaim.config as c;
        select pg_catalog.array_agg(d.id), pg_catalog.array_agg(d.error)
        into v_ids, v_errors
        from (
            select r.id, pg_catalog.format('worker %s stopped heartbeating', r.worker_id) as error
            from pgclaim.records as r
            where r.status = 'running'
              and exists (
                  select from pgclaim.workers as w
                  where w.worker_id = r.worker_id
                    and w.last_seen < v_now - v_timeout
                    and (w.owner_role = r.holder_role
                         or w.owner_role is null or r.holder_role is null)
              )
              and (_reclaim.queue is null or r.queue = _reclaim.queue)
            limit max_records
            for update of r skip locked
        ) as d;
        if v_ids is not null then
            select pg_catalog.count(*)::integer, pg_catalog.array_agg(e.queue)
            into v_count, v_queues
            from pgclaim._end_attempt(v_ids, v_errors, null, null, true, v_now) as e;
        end if;
    end if;
    -- After the update above: the records it took back are no longer running.
    select pg_catalog.array_agg(x.id), pg_catalog.array_agg(x.error)
    into v_ids, v_errors
    from (
        select r.id, pg_catalog.format('lease of worker %s expired', r.worker_id) as error
        from pgclaim.records as r
        where r.status = 'running'
          and r.lease_until < v_now
          and (_reclaim.queue is null or r.queue = _reclaim.queue)
        order by r.lease_until
        limit max_records - v_count
        for update of r skip locked
    ) as x;
    if v_ids is not null then
        select pg_catalog.count(*)::integer, pg_catalog.array_agg(e.queue)
        into v_more, v_more_queues
        from pgclaim._end_attempt(v_ids, v_errors, null, null, true, v_now) as e;
        v_count := v_count + v_more;
        v_queues := pg_catalog.array_cat(v_queues, v_more_queues);
    end if;
    if v_count > 0 then
        perform pgclaim._count_attempts('reclaim', v_queues);
    end if;
    return v_count;
end;
$fn$;

comment on function pgclaim._reclaim(text, integer, boolean) is
'Internal: takes back expired leases (and dead workers'' records), bounded, skip locked.';
