-- pgclaim.heartbeat(worker_id, ids): the worker is alive; it also extends, by
-- the length each was claimed with, the leases of the records it holds: all of
-- them, or with ids only those among ids. A worker loop passes the ids it is
-- working on, so that a record whose claim reply it never received (a connection
-- cut after the claim committed) is not kept alive by its heartbeats and comes
-- back when its lease expires. An unknown worker is registered.
-- Returns: how many leases it extended. Raises: 22004/22023 bad worker_id.
-- Tables: workers (upsert), records (update).
create or replace function pgclaim.heartbeat(worker_id text, ids bigint[] default null)
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
    where r.worker_id = heartbeat.worker_id and r.status = 'running'
      and (heartbeat.ids is null or r.id = any(heartbeat.ids));
    get diagnostics v_count = row_count;
    return v_count;
end;
$fn$;

comment on function pgclaim.heartbeat(text, bigint[]) is
'Marks worker_id alive and extends the leases of the records it holds (only those among '
'ids, when given); returns how many.';
