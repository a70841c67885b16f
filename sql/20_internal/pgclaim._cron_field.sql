-- pgclaim._cron_field(field, value, lo, hi, names): the values one field of a
-- cron expression allows, from lo to hi. value is a comma-separated list of
-- items: '*', a number or name, a range 'a-b', each optionally with a step
-- ('*/5', '1-10/2', '5/15' = 5 to hi by 15). names (optional) are the names of
-- lo, lo+1, ... (jan..dec, sun..sat), matched without regard to case.
-- Returns: the allowed values, ascending, without duplicates.
-- Raises: 22023 naming the field and the value when an item is malformed, out
-- of lo..hi, a range runs backwards or a step is not positive. Tables: none.
create or replace function pgclaim._cron_field(
    field text,
    value text,
    lo integer,
    hi integer,
    names text[] default null
)
returns integer[]
language plpgsql
immutable
set search_path = pg_catalog, pg_temp
as $fn$
declare
    v_item text;
    v_m text[];
    v_from integer;
    v_to integer;
    v_step integer;
    v_out integer[] := '{}'::integer[];
    v_part text;
    v_num integer;
    v_i integer;
begin
    if value is null or value = '' then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format('pgclaim: cron %s field is missing', field);
    end if;
    foreach v_item in array pg_catalog.string_to_array(value, ',') loop
        -- item: (* | a | a-b) [/step]
        v_m := pg_catalog.regexp_match(
            pg_catalog.lower(v_item), '^(\*|[a-z0-9]+)(?:-([a-z0-9]+))?(?:/([0-9]+))?$');
        if v_m is null or (v_m[1] = '*' and v_m[2] is not null) then
            raise exception using
                errcode = '22023',
                message = pg_catalog.format(
                    'pgclaim: invalid cron %s field %s (item %s)', field,
                    pgclaim._show(value), pgclaim._show(v_item)),
                hint = 'An item is *, a number or name, or a range a-b, each with an '
                    'optional /step.';
        end if;
        v_from := null;
        v_to := null;
        foreach v_part in array array[v_m[1], v_m[2]] loop
            continue when v_part is null or v_part = '*';
            if v_part ~ '^[0-9]{1,9}$' then
                v_num := v_part::integer;
            else
                v_i := pg_catalog.array_position(names, v_part);
                v_num := case when v_i is null then null else lo + v_i - 1 end;
            end if;
            if v_num is null or v_num < lo or v_num > hi then
                raise exception using
                    errcode = '22023',
                    message = pg_catalog.format(
                        'pgclaim: invalid cron %s field %s (%s is not in %s..%s)', field,
                        pgclaim._show(value), pgclaim._show(v_part), lo, hi);
            end if;
            if v_from is null then
                v_from := v_num;
            else
                v_to := v_num;
            end if;
        end loop;
        v_step := case
            when v_m[3] is null then 1
            when pg_catalog.length(v_m[3]) > 4 then 0
            else v_m[3]::integer
        end;
        if v_m[1] = '*' then
            v_from := lo;
            v_to := hi;
        elsif v_to is null then
            -- 'a/step' runs from a to the end; a lone 'a' is just a.
            v_to := case when v_m[3] is null then v_from else hi end;
        end if;
        if v_to < v_from or v_step < 1 or v_step > hi - lo + 1 then
            raise exception using
                errcode = '22023',
                message = pg_catalog.format(
                    'pgclaim: invalid cron %s field %s (item %s)', field,
                    pgclaim._show(value), pgclaim._show(v_item)),
                hint = 'A range a-b runs upwards; a step is 1 or more and within the field.';
        end if;
        v_out := v_out || array(select pg_catalog.generate_series(v_from, v_to, v_step));
    end loop;
    return array(select distinct u from pg_catalog.unnest(v_out) as u order by u);
end;
$fn$;

comment on function pgclaim._cron_field(text, text, integer, integer, text[]) is
'Internal: the values one field of a cron expression allows (lists, ranges, steps, names); '
'raises 22023 naming the field.';
