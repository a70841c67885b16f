-- pgclaim._cron_slot(cron, timezone, t, forward): a slot of a cron expression
-- (minute hour day-of-month month day-of-week, read as wall-clock time in
-- timezone): with forward, the first slot strictly after t; else the last slot
-- at or before t. With t null, only checks the expression and returns null.
-- Fields take '*', numbers, names (jan..dec, sun..sat; 7 is Sunday too), lists,
-- ranges and steps (_cron_field); @yearly, @annually, @monthly, @weekly, @daily,
-- @midnight and @hourly stand for their usual expressions. As in cron, when
-- day-of-month and day-of-week are both restricted (neither starts with '*') a
-- day matching either is taken; otherwise a day must match both.
-- The search skips a field at a time (a month, a day, to the next allowed hour
-- or minute), so it takes at most a few hundred steps; it gives up after 5000.
-- Wall-clock times that a daylight-saving change skips are converted as
-- PostgreSQL converts them (an hour on); a repeated hour runs once.
-- Returns: timestamptz, or null when t is null.
-- Raises: 22023 when the expression is malformed (naming the field) or never
-- matches (30 February). Tables: none.
create or replace function pgclaim._cron_slot(
    cron text,
    timezone text,
    t timestamptz,
    forward boolean
)
returns timestamptz
language plpgsql
stable
set search_path = pg_catalog, pg_temp
as $fn$
declare
    v_f text[];
    v_min integer[];
    v_hour integer[];
    v_dom integer[];
    v_mon integer[];
    v_dow integer[];
    v_either boolean;
    v_l timestamp;
    v_c timestamptz;
    v_n integer;
    v_ok boolean;
begin
    v_f := pg_catalog.regexp_split_to_array(
        pg_catalog.btrim(pg_catalog.lower(coalesce(cron, '')), E' \t'), E'[ \t]+');
    if pg_catalog.cardinality(v_f) = 1 and v_f[1] like '@%' then
        v_f := pg_catalog.string_to_array(case v_f[1]
            when '@yearly' then '0 0 1 1 *'
            when '@annually' then '0 0 1 1 *'
            when '@monthly' then '0 0 1 * *'
            when '@weekly' then '0 0 * * 0'
            when '@daily' then '0 0 * * *'
            when '@midnight' then '0 0 * * *'
            when '@hourly' then '0 * * * *'
        end, ' ');
    end if;
    if v_f is null or pg_catalog.cardinality(v_f) <> 5 then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format(
                'pgclaim: invalid cron expression %s: it needs 5 fields', pgclaim._show(cron)),
            hint = 'minute hour day-of-month month day-of-week, for example */5 * * * *, '
                'or one of @yearly, @monthly, @weekly, @daily, @hourly.';
    end if;
    v_min := pgclaim._cron_field('minute', v_f[1], 0, 59);
    v_hour := pgclaim._cron_field('hour', v_f[2], 0, 23);
    v_dom := pgclaim._cron_field('day-of-month', v_f[3], 1, 31);
    v_mon := pgclaim._cron_field(
        'month', v_f[4], 1, 12,
        array['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec']);
    v_dow := pgclaim._cron_field(
        'day-of-week', v_f[5], 0, 7, array['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat']);
    v_dow := array(select distinct d % 7 from pg_catalog.unnest(v_dow) as d);
    v_either := v_f[3] not like '*%' and v_f[5] not like '*%';
    if t is null then
        return null;
    end if;

    v_l := pg_catalog.date_trunc('minute', t at time zone _cron_slot.timezone);
    if forward then
        v_l := v_l + interval '1 minute';
    end if;
    for v_step in 1..5000 loop
        if not extract(month from v_l)::integer = any(v_mon) then
            v_l := case when forward
                then pg_catalog.date_trunc('month', v_l) + interval '1 month'
                else pg_catalog.date_trunc('month', v_l) - interval '1 minute' end;
            continue;
        end if;
        v_ok := extract(day from v_l)::integer = any(v_dom);
        if v_either then
            v_ok := v_ok or extract(dow from v_l)::integer = any(v_dow);
        else
            v_ok := v_ok and extract(dow from v_l)::integer = any(v_dow);
        end if;
        if not v_ok then
            v_l := case when forward
                then pg_catalog.date_trunc('day', v_l) + interval '1 day'
                else pg_catalog.date_trunc('day', v_l) - interval '1 minute' end;
            continue;
        end if;
        v_n := extract(hour from v_l)::integer;
        if not v_n = any(v_hour) then
            if forward then
                select min(h) into v_n from pg_catalog.unnest(v_hour) as h where h > v_n;
                v_l := case when v_n is null
                    then pg_catalog.date_trunc('day', v_l) + interval '1 day'
                    else pg_catalog.date_trunc('day', v_l) + pg_catalog.make_interval(hours => v_n)
                end;
            else
                select max(h) into v_n from pg_catalog.unnest(v_hour) as h where h < v_n;
                v_l := case when v_n is null
                    then pg_catalog.date_trunc('day', v_l) - interval '1 minute'
                    else pg_catalog.date_trunc('day', v_l)
                        + pg_catalog.make_interval(hours => v_n, mins => 59)
                end;
            end if;
            continue;
        end if;
        v_n := extract(minute from v_l)::integer;
        if not v_n = any(v_min) then
            if forward then
                select min(m) into v_n from pg_catalog.unnest(v_min) as m where m > v_n;
                v_l := case when v_n is null
                    then pg_catalog.date_trunc('hour', v_l) + interval '1 hour'
                    else pg_catalog.date_trunc('hour', v_l) + pg_catalog.make_interval(mins => v_n)
                end;
            else
                select max(m) into v_n from pg_catalog.unnest(v_min) as m where m < v_n;
                v_l := case when v_n is null
                    then pg_catalog.date_trunc('hour', v_l) - interval '1 minute'
                    else pg_catalog.date_trunc('hour', v_l) + pg_catalog.make_interval(mins => v_n)
                end;
            end if;
            continue;
        end if;
        v_c := v_l at time zone _cron_slot.timezone;
        -- Around a daylight-saving change a wall-clock minute may fall on the
        -- wrong side of t: look on.
        if (forward and v_c <= t) or (not forward and v_c > t) then
            v_l := v_l + case when forward then interval '1 minute' else interval '-1 minute' end;
            continue;
        end if;
        return v_c;
    end loop;
    raise exception using
        errcode = '22023',
        message = pg_catalog.format(
            'pgclaim: cron expression %s never matches', pgclaim._show(cron)),
        hint = 'Its day-of-month and month allow no day (30 February?).';
end;
$fn$;

comment on function pgclaim._cron_slot(text, text, timestamptz, boolean) is
'Internal: the first slot of a cron expression after t (forward) or the last at or before '
't, in timezone; raises 22023 for a malformed expression naming its field.';
