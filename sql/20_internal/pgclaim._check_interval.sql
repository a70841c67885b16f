-- pgclaim._check_interval(arg_name, value, allow_null, allow_zero, max): validates
-- a duration. Every field of the interval (months, days, time) must be zero or
-- positive, so that '1 mon -30 days 1 second' is not taken for one second, and
-- the whole must not exceed max (default 100 years: pgclaim adds durations to
-- timestamps, which must not overflow).
-- Returns: nothing.
-- Raises: 22004 when null and not allowed; 22023 when negative in any field, zero
-- and not allowed, or above max. Tables: none.
create or replace function pgclaim._check_interval(
    arg_name text,
    value interval,
    allow_null boolean default true,
    allow_zero boolean default false,
    max interval default '100 years'
)
returns void
language plpgsql
immutable
set search_path = pg_catalog, pg_temp
as $fn$
declare
    v_months numeric;
    v_days numeric;
    v_secs numeric;
begin
    if value is null then
        if allow_null then
            return;
        end if;
        raise exception using
            errcode = '22004',
            message = pg_catalog.format('pgclaim: %s must not be null', arg_name);
    end if;
    v_months := extract(year from value) * 12 + extract(month from value);
    v_days := extract(day from value);
    v_secs := extract(epoch from value - pg_catalog.make_interval(
        months => v_months::integer, days => v_days::integer));
    if v_months < 0 or v_days < 0 or v_secs < 0
       or (not allow_zero and v_months = 0 and v_days = 0 and v_secs = 0) then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format(
                'pgclaim: %s must be %s in every field, got %s', arg_name,
                case when allow_zero then 'zero or positive' else 'positive' end,
                pgclaim._show(value::text));
    end if;
    if value > max then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format(
                'pgclaim: %s must be at most %s, got %s', arg_name, max,
                pgclaim._show(value::text));
    end if;
end;
$fn$;

comment on function pgclaim._check_interval(text, interval, boolean, boolean, interval) is
'Internal: raises 22004/22023 unless value is a duration positive (or zero) in every '
'field and at most max.';
