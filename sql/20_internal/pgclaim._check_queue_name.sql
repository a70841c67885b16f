-- pgclaim._check_queue_name(queue): validates a queue name.
-- Returns: nothing.
-- Raises: 22004 when null, 22023 unless it matches ^[A-Za-z0-9_.:-]{1,48}$
-- (the name becomes part of the NOTIFY channel pgclaim_<queue>). Tables: none.
create or replace function pgclaim._check_queue_name(queue text)
returns void
language plpgsql
immutable
set search_path = pg_catalog, pg_temp
as $fn$
begin
    if queue is null then
        raise exception using
            errcode = '22004',
            message = 'pgclaim: queue must not be null';
    end if;
    -- The length first: a huge value is refused without running the regex on it.
    if pg_catalog.octet_length(queue) > 48 or queue !~ '^[A-Za-z0-9_.:-]{1,48}$' then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format('pgclaim: invalid queue name %s', pgclaim._show(queue)),
            hint = 'A queue name is 1 to 48 characters from A-Z a-z 0-9 _ . : -';
    end if;
end;
$fn$;

comment on function pgclaim._check_queue_name(text) is
'Internal: raises 22004/22023 unless queue is a valid queue name.';
