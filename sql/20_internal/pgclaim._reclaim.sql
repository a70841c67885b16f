-- pgclaim._reclaim(queue, max_records): takes back running records whose lease
-- expired (of one queue, or of all when queue is null) and, with dead_workers,
-- those held by registered workers silent for longer than config.worker_timeout.
-- Returns: how many records it took back (to pending, or failed when out of attempts).
-- Raises: nothing. Tables: records (update), workers and config (read).
-- Rows locked by others are skipped, so any number of callers may run at once.
create or replace function pgclaim._reclaim(
    queue text, max_records integer, dead_workers boolean
)
returns integer
language plpgsql
volatile
set search_path = ''
as $fn$
declare
    v_now timestamptz := pgclaim._now();
    v_timeout interval;
    v_count integer := 0;
    v_more integer;
begin
    if max_records <= 0 then
        return 0;
    end if;
    if dead_workers then
        select c.worker_timeout into v_timeout from pgclaim.config as c;
        with dead as materialized (
            select r.id from pgclaim.records as r
            where r.status = 'running'
              and r.worker_id in (
                  select w.worker_id from pgclaim.workers as w
                  where w.last_seen < v_now - v_timeout
              )
              and (_reclaim.queue is null or r.queue = _reclaim.queue)
            limit max_records
            for update skip locked
        )
        update pgclaim.records as r set
            status = case when r.attempt >= r.max_attempts
                then 'failed'::pgclaim.status else 'pending'::pgclaim.status end,
            finished_at = case when r.attempt >= r.max_attempts then v_now end,
            last_error = pg_catalog.format('worker %s stopped heartbeating', r.worker_id),
            worker_id = null, lease_until = null, lease_token = null, lease_for = null
        from dead where r.id = dead.id;
        get diagnostics v_count = row_count;
    end if;
    with expired as materialized (
        select r.id from pgclaim.records as r
        where r.status = 'running'
          and r.lease_until < v_now
          and (_reclaim.queue is null or r.queue = _reclaim.queue)
        order by r.lease_until
        limit max_records - v_count
        for update skip locked
    )
    update pgclaim.records as r set
        status = case when r.attempt >= r.max_attempts
            then 'failed'::pgclaim.status else 'pending'::pgclaim.status end,
        finished_at = case when r.attempt >= r.max_attempts then v_now end,
        last_error = pg_catalog.format('lease of worker %s expired', r.worker_id),
        worker_id = null, lease_until = null, lease_token = null, lease_for = null
    from expired where r.id = expired.id;
    get diagnostics v_more = row_count;
    return v_count + v_more;
end;
$fn$;

comment on function pgclaim._reclaim(text, integer, boolean) is
'Internal: takes back expired leases (and dead workers'' records), bounded, skip locked.';
