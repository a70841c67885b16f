-- pgclaim._check_text(arg_name, value, max_bytes): validates a required name
-- argument (worker_id, dedup_key). Limits are in bytes, so that a value always
-- fits its index whatever its characters.
-- Returns: nothing.
-- Raises: 22004 when value is null, 22023 when empty, longer than max_bytes or
-- not printable. Tables: none.
create or replace function pgclaim._check_text(
    arg_name text, value text, max_bytes integer default 200
)
returns void
language plpgsql
immutable
set search_path = pg_catalog, pg_temp
as $fn$
begin
    if value is null then
        raise exception using
            errcode = '22004',
            message = pg_catalog.format('pgclaim: %s must not be null', arg_name);
    end if;
    if value = '' or pg_catalog.octet_length(value) > max_bytes or value ~ '[[:cntrl:]]' then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format('pgclaim: invalid %s %s', arg_name, pgclaim._show(value)),
            hint = pg_catalog.format(
                '%s must be 1 to %s bytes of printable characters', arg_name, max_bytes);
    end if;
end;
$fn$;

comment on function pgclaim._check_text(text, text, integer) is
'Internal: raises 22004/22023 unless value is a non-empty printable name of at most '
'max_bytes bytes.';
