-- pgclaim._default_burst(rate): the burst a rate gets when none is given (the
-- rate rounded up, at least 1); null for no rate or one _check_settings refuses.
-- Returns: integer or null. Raises: nothing. Tables: none.
create or replace function pgclaim._default_burst(rate double precision)
returns integer
language sql
immutable
set search_path = pg_catalog, pg_temp
as $fn$
    select case
        when rate > 0 and rate <= 1000000 then greatest(1, pg_catalog.ceil(rate))::integer
    end;
$fn$;

comment on function pgclaim._default_burst(double precision) is
'Internal: the burst of a rate given without one (the rate rounded up, at least 1).';
