-- pgclaim.heartbeat(worker_id): the worker is alive; it also extends the leases
-- of every record it holds by the length each was claimed with. An unknown
-- worker is registered.
-- Returns: how many leases it extended. Raises: 22004/22023 bad worker_id.
-- Tables: workers (upsert), records (update).
create or replace function pgclaim.heartbeat(worker_id text)
returns integer
language plpgsql
volatile
security definer
set search_path = ''
as $fn$
declare
    v_now timestamptz := pgclaim._now();
    v_count integer;
begin
    perform pgclaim._check_text('worker_id', heartbeat.worker_id);
    insert into pgclaim.workers as w (worker_id, started_at, last_seen)
    values (heartbeat.worker_id, v_now, v_now)
    on conflict on constraint workers_pkey do update set last_seen = excluded.last_seen;
    update pgclaim.records as r set lease_until = v_now + r.lease_for
    where r.worker_id = heartbeat.worker_id and r.status = 'running';
    get diagnostics v_count = row_count;
    return v_count;
end;
$fn$;

comment on function pgclaim.heartbeat(text) is
'Marks worker_id alive and extends the leases of every record it holds; returns how many.';
