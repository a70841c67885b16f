-- pgclaim.register_worker(worker_id, info): records a worker of the caller's role
-- and its first heartbeat; registering again refreshes info and last_seen.
-- Returns: nothing. Raises: 22004/22023 bad worker_id, 22004 null info, 22023
-- info over config.max_info_bytes, PC005 the id belongs to another role.
-- Tables: config (read), workers (upsert).
create or replace function pgclaim.register_worker(worker_id text, info jsonb default '{}')
returns void
language plpgsql
volatile
security definer
set search_path = pg_catalog, pg_temp
as $fn$
declare
    v_max integer;
begin
    perform pgclaim._check_text('worker_id', register_worker.worker_id);
    if register_worker.info is null then
        raise exception using errcode = '22004', message = 'pgclaim: info must not be null';
    end if;
    select c.max_info_bytes into v_max from pgclaim.config as c;
    perform pgclaim._check_int(
        'the size of info in bytes', pg_catalog.pg_column_size(register_worker.info), 0, v_max);
    perform pgclaim._touch_worker(register_worker.worker_id, register_worker.info, pgclaim._now());
end;
$fn$;

comment on function pgclaim.register_worker(text, jsonb) is
'Registers a worker of the caller''s role (or refreshes it) with free-form info. '
'Raises 22004/22023, PC005.';
