-- pgclaim._check_interval(arg_name, value, allow_null): validates a duration.
-- Returns: nothing.
-- Raises: 22004 when null and not allowed, 22023 when zero or negative.
-- Tables: none.
create or replace function pgclaim._check_interval(
    arg_name text, value interval, allow_null boolean default true
)
returns void
language plpgsql
immutable
set search_path = ''
as $fn$
begin
    if value is null then
        if allow_null then
            return;
        end if;
        raise exception using
            errcode = '22004',
            message = pg_catalog.format('pgclaim: %s must not be null', arg_name);
    end if;
    if value <= '0'::interval then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format(
                'pgclaim: %s must be positive, got %L', arg_name, value::text);
    end if;
end;
$fn$;

comment on function pgclaim._check_interval(text, interval, boolean) is
'Internal: raises 22004/22023 unless value is a positive interval.';
