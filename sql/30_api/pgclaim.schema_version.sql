-- pgclaim.schema_version(): the version of the installed schema; each migration
-- that changes the schema raises it.
-- Returns: integer. Raises: nothing. Tables: none.
create or replace function pgclaim.schema_version()
returns integer
language sql
immutable
security definer
set search_path = ''
as $fn$
    select 1;
$fn$;

comment on function pgclaim.schema_version() is
'The version of the installed pgclaim schema.';
