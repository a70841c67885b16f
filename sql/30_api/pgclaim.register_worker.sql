-- pgclaim.register_worker(worker_id, info): records a worker and its first
-- heartbeat; registering again refreshes info and last_seen.
-- Returns: nothing. Raises: 22004/22023 bad worker_id, 22004 null info.
-- Tables: workers (upsert).
create or replace function pgclaim.register_worker(worker_id text, info jsonb default '{}')
returns void
language plpgsql
volatile
security definer
set search_path = ''
as $fn$
declare
    v_now timestamptz := pgclaim._now();
begin
    perform pgclaim._check_text('worker_id', register_worker.worker_id);
    if register_worker.info is null then
        raise exception using errcode = '22004', message = 'pgclaim: info must not be null';
    end if;
    insert into pgclaim.workers as w (worker_id, info, started_at, last_seen)
    values (register_worker.worker_id, register_worker.info, v_now, v_now)
    on conflict on constraint workers_pkey do update
    set info = excluded.info, last_seen = excluded.last_seen;
end;
$fn$;

comment on function pgclaim.register_worker(text, jsonb) is
'Registers a worker (or refreshes it) with free-form info. Raises 22004/22023.';
