-- pgclaim._show(value): a value for an error message: quoted, and cut to its
-- first 40 characters (with "...") so that a huge argument never comes back
-- whole in a message or the server log.
-- Returns: text ('null' for null). Raises: nothing. Tables: none.
create or replace function pgclaim._show(value text)
returns text
language sql
immutable
set search_path = pg_catalog, pg_temp
as $fn$
    select case
        when value is null then 'null'
        when pg_catalog.length(value) <= 40 then pg_catalog.quote_literal(value)
        else pg_catalog.quote_literal(pg_catalog.left(value, 40)) || '...'
    end;
$fn$;

comment on function pgclaim._show(text) is
'Internal: a value quoted and cut to 40 characters, for error messages.';
