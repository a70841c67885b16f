-- pgclaim.deregister_worker(worker_id): releases every record the worker holds
-- under the caller's role (attempt not counted, _end_attempt), wakes their
-- queues' workers and removes the worker from the workers table.
-- Returns: how many records it released. Raises: 22004/22023 bad worker_id;
-- PC005 the worker id belongs to another role.
-- Tables: records (update), workers (delete), queue_totals (upsert).
create or replace function pgclaim.deregister_worker(worker_id text)
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
    v_ids bigint [];
    v_count integer;
    v_queues text [];
begin
    perform pgclaim._check_text('worker_id', deregister_worker.worker_id);
    if exists (
        select from pgclaim.workers as w
        where w.worker_id = deregister_worker.worker_id
          and w.owner_role <> v_me and not v_admin
    ) then
        raise exception using
            errcode = 'PC005',
            message = pg_catalog.format(
                'pgclaim: worker id %s belongs to another role',
                pgclaim._show(deregister_worker.worker_id));
    end if;
    select pg_catalog.array_agg(r.id order by r.id) into v_ids
    from (
        select r.id from pgclaim.records as r
        where r.worker_id = deregister_worker.worker_id and r.status = 'running'
          and (v_admin or coalesce(r.holder_role, v_me) = v_me)
        order by r.id
        for update
    ) as r;
    select pg_catalog.count(*)::integer, pg_catalog.array_agg(e.queue)
    into v_count, v_queues
    from pgclaim._end_attempt(v_ids, null, null, null, false, v_now) as e;
    if v_count > 0 then
        perform pgclaim._count_attempts('release', v_queues);
    end if;
    perform pgclaim._notify(q.queue)
    from (select distinct u.queue from pg_catalog.unnest(v_queues) as u (queue)) as q;
    delete from pgclaim.workers as w where w.worker_id = deregister_worker.worker_id;
    return v_count;
end;
$fn$;

comment on function pgclaim.deregister_worker(text) is
'Releases every record worker_id holds (attempt not counted) and forgets the worker; '
'returns how many records it released. Raises PC005 for another role''s worker id.';
