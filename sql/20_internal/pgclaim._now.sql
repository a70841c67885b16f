-- pgclaim._now(): the one clock every pgclaim function reads.
-- Returns: clock_timestamp(), so long transactions still see real lease expiry.
-- Raises: nothing. Tables: none.
-- Tests replace this function inside their own transaction to move time.
create or replace function pgclaim._now()
returns timestamptz
language plpgsql
volatile
set search_path = pg_catalog, pg_temp
as $fn$
begin
    return pg_catalog.clock_timestamp();
end;
$fn$;

comment on function pgclaim._now() is
'Internal: the clock of pgclaim (clock_timestamp); tests replace it.';
