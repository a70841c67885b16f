-- pgclaim.cancel(ids): pending or running records among ids become cancelled
-- (moved to pgclaim.finished, _finish); a running record's holder then finds its
-- reports refused.
-- Returns: how many it cancelled; finished or unknown ids are skipped.
-- Raises: 22004 null ids or element; 22023 more ids than config.max_ids.
-- Waits at most 5 s for row locks (55P03, retried by the client).
-- Tables: records (delete), finished (insert).
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
    select pg_catalog.count(*)::integer into v_count
    from pgclaim._finish(cancel.ids, 'cancelled', pgclaim._now(), null, '{pending,running}') as f;
    return v_count;
end;
$fn$;

comment on function pgclaim.cancel(bigint[]) is
'Cancels the pending or running records among ids; returns how many.';
