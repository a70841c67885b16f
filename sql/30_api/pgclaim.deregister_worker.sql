-- pgclaim.deregister_worker(worker_id): releases every record the worker holds
-- (attempt not counted) and removes it from the workers table.
-- Returns: how many records it released. Raises: 22004/22023 bad worker_id.
-- Tables: records (update), workers (delete).
create or replace function pgclaim.deregister_worker(worker_id text)
returns integer
language plpgsql
volatile
security definer
set search_path = ''
as $fn$
declare
    v_count integer;
    v_queues text [];
begin
    perform pgclaim._check_text('worker_id', deregister_worker.worker_id);
    with held as (
        update pgclaim.records as r set
            status = 'pending',
            attempt = r.attempt - 1,
            worker_id = null, lease_until = null, lease_token = null, lease_for = null
        where r.worker_id = deregister_worker.worker_id and r.status = 'running'
        returning r.queue
    )
    select pg_catalog.count(*)::integer, pg_catalog.array_agg(distinct held.queue)
    into v_count, v_queues
    from held;
    if v_count > 0 then
        perform pg_catalog.pg_notify('pgclaim_' || q.queue, '')
        from pg_catalog.unnest(v_queues) as q (queue);
    end if;
    delete from pgclaim.workers as w where w.worker_id = deregister_worker.worker_id;
    return v_count;
end;
$fn$;

comment on function pgclaim.deregister_worker(text) is
'Releases every record worker_id holds (attempt not counted) and forgets the worker; '
'returns how many records it released.';
