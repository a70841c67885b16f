-- pgclaim._touch_worker(worker_id, info, now): registers worker_id as the
-- caller's role's (or refreshes it: last_seen = now, and info when given). A
-- worker id belongs to the role that registered it: another role (unless a
-- pgclaim_admin) may not heartbeat, re-register or deregister it. A worker
-- registered before release 0.2.0 has no owner yet: the first non-admin role to
-- touch it adopts it.
-- Returns: nothing. Raises: PC005 the worker id belongs to another role.
-- Tables: workers (upsert).
create or replace function pgclaim._touch_worker(worker_id text, info jsonb, now timestamptz)
returns void
language plpgsql
volatile
set search_path = pg_catalog, pg_temp
as $fn$
declare
    v_me oid := pgclaim._caller();
    v_admin boolean := pgclaim._admin(v_me);
begin
    insert into pgclaim.workers as w (worker_id, info, started_at, last_seen, owner_role)
    values (
        _touch_worker.worker_id, coalesce(_touch_worker.info, '{}'::jsonb),
        _touch_worker.now, _touch_worker.now, v_me
    )
    on conflict on constraint workers_pkey do update set
        last_seen = excluded.last_seen,
        info = case when _touch_worker.info is null then w.info else excluded.info end,
        owner_role = case
            when w.owner_role is null and not v_admin then excluded.owner_role
            else w.owner_role
        end
    where w.owner_role = excluded.owner_role or w.owner_role is null or v_admin;
    if not found then
        raise exception using
            errcode = 'PC005',
            message = pg_catalog.format(
                'pgclaim: worker id %s belongs to another role', pgclaim._show(worker_id)),
            hint = 'Each worker process needs its own worker id (pgclaim.instance_id()).';
    end if;
end;
$fn$;

comment on function pgclaim._touch_worker(text, jsonb, timestamptz) is
'Internal: registers or refreshes a worker id of the caller''s role; raises PC005 when '
'another role owns it.';
