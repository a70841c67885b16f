-- pgclaim.purge(queue, older_than, max_records): deletes finished records
-- (completed, failed, cancelled) of the queue that finished more than
-- older_than ago (default: the queue's retention), at most max_records a call.
-- Returns: how many it deleted. Raises: PC001 unknown queue; 22023 older_than
-- negative or max_records < 1. Waits at most 5 s for row locks (55P03).
-- Tables: finished (delete), queue_totals (upsert).
create or replace function pgclaim.purge(
    queue text, older_than interval default null, max_records integer default 100000
)
returns integer
language plpgsql
volatile
security definer
set search_path = pg_catalog, pg_temp
set lock_timeout = '5s'
as $fn$
declare
    v_q pgclaim.queues;
    v_cutoff timestamptz;
    v_count integer;
begin
    v_q := pgclaim._queue(purge.queue);
    perform pgclaim._check_interval('older_than', purge.older_than, true, true);
    perform pgclaim._check_int('max_records', purge.max_records, 1, 2147483647);
    v_cutoff := pgclaim._now() - coalesce(purge.older_than, v_q.retention);
    with gone as (
        delete from pgclaim.finished as f
        where f.id in (
            select o.id from pgclaim.finished as o
            where o.queue = purge.queue and o.finished_at < v_cutoff
            limit purge.max_records
        )
        returning f.status
    ),

    counts as (
        select
            pg_catalog.count(*)::integer as n,
            pg_catalog.count(*) filter (where g.status = 'completed') as completed
        from gone as g
    ),

    -- the completions kept in pgclaim.finished, as counted in queue_totals
    counted as (
        insert into pgclaim.queue_totals as t (queue, slot, completed)
        select purge.queue, (pg_catalog.pg_backend_pid() % 16)::smallint, -c.completed
        from counts as c where c.completed > 0
        on conflict on constraint queue_totals_pkey do update
        set completed = t.completed + excluded.completed
    )

    select c.n into v_count from counts as c;
    return v_count;
end;
$fn$;

comment on function pgclaim.purge(text, interval, integer) is
'Deletes finished records of a queue older than older_than (default: its retention), '
'at most max_records; returns how many. Raises PC001, 22023.';
