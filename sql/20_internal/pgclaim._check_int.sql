-- pgclaim._check_int(arg_name, value, min, max, allow_null): validates an integer
-- argument or setting (max_attempts, priority, batch sizes, limits): the one
-- place where such a bound is checked and worded.
-- Returns: nothing.
-- Raises: 22004 when null and not allowed; 22023 outside [min, max]. Tables: none.
create or replace function pgclaim._check_int(
    arg_name text, value bigint, min bigint, max bigint, allow_null boolean default false
)
returns void
language plpgsql
immutable
set search_path = pg_catalog, pg_temp
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
    if value < min or value > max then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format(
                'pgclaim: %s must be between %s and %s, got %s', arg_name, min, max, value);
    end if;
end;
$fn$;

comment on function pgclaim._check_int(text, bigint, bigint, bigint, boolean) is
'Internal: raises 22004/22023 unless value is an integer within [min, max].';
