-- pgclaim.cancel(ids): pending or running records among ids become cancelled;
-- a running record's holder then finds its reports refused.
-- Returns: how many it cancelled; finished or unknown ids are skipped.
-- Raises: 22004 null ids or element; 22023 more ids than config.max_ids.
-- Waits at most 5 s for row locks (55P03, retried by the client).
-- Tables: records (update).
create or replace function pgclaim.cancel(ids bigint[])
returns integer
language plpgsql
volatile
security definer
set search_path = pg_catalog, pg_temp
set lock_timeout = '5s'
as $fn$
declare
    v_count integer;
begin
    perform pgclaim._check_ids(cancel.ids, null);
    update pgclaim.records as r set
        status = 'cancelled', finished_at = pgclaim._now(), lease_until = null
    where r.id = any(cancel.ids) and r.status in ('pending', 'running');
    get diagnostics v_count = row_count;
    return v_count;
end;
$fn$;

comment on function pgclaim.cancel(bigint[]) is
'Cancels the pending or running records among ids; returns how many.';
