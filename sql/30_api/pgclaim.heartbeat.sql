-- pgclaim.heartbeat(worker_id, ids): the worker is alive; it also extends, by
-- the length each was claimed with, the leases of the records it holds under the
-- caller's role: all of them, or with ids only those among ids. A worker loop
-- passes the ids it is working on, so that a record whose claim reply it never
-- received (a connection cut after the claim committed) is not kept alive by its
-- heartbeats and comes back when its lease expires. An unknown worker is
-- registered (_touch_worker).
-- Returns: how many leases it extended. Raises: 22004/22023 bad worker_id or ids;
-- PC005 the worker id belongs to another role.
-- Tables: workers (upsert), records (update).
create or replace function pgclaim.heartbeat(worker_id text, ids bigint[] default null)
returns integer
language plpgsql
volatile
security definer
set search_path = pg_catalog, pg_temp
as $fn$
declare
    v_now timestamptz := pgclaim._now();
    v_me oid := pgclaim._caller();
    v_admin boolean := pgclaim._admin(v_me);
    v_count integer;
begin
    perform pgclaim._check_text('worker_id', heartbeat.worker_id);
    if heartbeat.ids is not null then
        perform pgclaim._check_ids(heartbeat.ids, null);
    end if;
    perform pgclaim._touch_worker(heartbeat.worker_id, null, v_now);
    -- Lock in id order, as the reports do (_report, _finish): a heartbeat and a
    -- report of the same records at once then wait for each other instead of
    -- deadlocking.
    update pgclaim.records as r set lease_until = v_now + r.lease_for
    from (
        select h.id from pgclaim.records as h
        where h.worker_id = heartbeat.worker_id and h.status = 'running'
          and (heartbeat.ids is null or h.id = any(heartbeat.ids))
          and (v_admin or coalesce(h.holder_role, v_me) = v_me)
        order by h.id
        for update
    ) as held
    where r.id = held.id;
    get diagnostics v_count = row_count;
    return v_count;
end;
$fn$;

comment on function pgclaim.heartbeat(text, bigint[]) is
'Marks worker_id alive and extends the leases of the records it holds (only those among '
'ids, when given); returns how many. Raises PC005 for another role''s worker id.';
