-- pgclaim._check_dead_filter(error_like, min_attempt): validates the filters that
-- retry_failed and cancel take (either may be null: no filter).
-- Returns: nothing. Raises: 22023 error_like empty, over 1000 bytes or not
-- printable; min_attempt outside 1..1000. Tables: none.
create or replace function pgclaim._check_dead_filter(error_like text, min_attempt integer)
returns void
language plpgsql
immutable
set search_path = pg_catalog, pg_temp
as $fn$
begin
    if error_like is not null then
        perform pgclaim._check_text('error_like', error_like, 1000);
    end if;
    perform pgclaim._check_int('min_attempt', min_attempt, 1, 1000, true);
end;
$fn$;

comment on function pgclaim._check_dead_filter(text, integer) is
'Internal: raises 22023 for an error_like or min_attempt filter out of bounds.';
