-- pgclaim.tick(): enqueues what the periodic schedules have due (_tick): the
-- latest slot that has come of each due schedule, once. claim_batch does the
-- same when it finds a schedule due, so a database whose workers claim needs no
-- other caller; without claims, pg_cron or a DBA may call it (say, every minute).
-- Returns: how many records it added.
-- Raises: nothing. Tables: schedules (update), and _tick's.
create or replace function pgclaim.tick()
returns integer
language plpgsql
volatile
security definer
set search_path = pg_catalog, pg_temp
as $fn$
begin
    return pgclaim._tick(pgclaim._now());
end;
$fn$;

comment on function pgclaim.tick() is
'Enqueues the due slot of each periodic schedule once (the latest slot missed); returns '
'how many records it added.';
