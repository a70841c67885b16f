-- pgclaim._check_text(name, value, max_len): validates a required name argument.
-- Returns: nothing.
-- Raises: 22004 when value is null, 22023 when empty, too long or not printable.
-- Tables: none.
create or replace function pgclaim._check_text(
    arg_name text, value text, max_len integer default 200
)
returns void
language plpgsql
immutable
set search_path = ''
as $fn$
begin
    if value is null then
        raise exception using
            errcode = '22004',
            message = pg_catalog.format('pgclaim: %s must not be null', arg_name);
    end if;
    if value = '' or pg_catalog.length(value) > max_len or value ~ '[[:cntrl:]]' then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format('pgclaim: invalid %s %L', arg_name, value),
            hint = pg_catalog.format(
                '%s must be 1 to %s printable characters', arg_name, max_len);
    end if;
end;
$fn$;

comment on function pgclaim._check_text(text, text, integer) is
'Internal: raises 22004/22023 unless value is a non-empty printable name.';
