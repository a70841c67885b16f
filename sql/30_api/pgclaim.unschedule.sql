-- pgclaim.unschedule(name): removes a periodic schedule; the records it
-- enqueued stay.
-- Returns: whether the schedule existed.
-- Raises: 22004 null name. Tables: schedules (delete).
create or replace function pgclaim.unschedule(name text)
returns boolean
language plpgsql
volatile
security definer
set search_path = pg_catalog, pg_temp
as $fn$
begin
    if unschedule.name is null then
        raise exception using
            errcode = '22004',
            message = 'pgclaim: name must not be null';
    end if;
    delete from pgclaim.schedules as s where s.name = unschedule.name;
    return found;
end;
$fn$;

comment on function pgclaim.unschedule(text) is
'Removes a periodic schedule (its records stay); returns whether it existed. Raises 22004.';
