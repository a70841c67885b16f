-- pgclaim.schema_version(): the version of the installed schema: the number of
-- the newest migration (migrations/NNNN_*.sql) that built it. Each migration
-- raises it; the Python client derives the version it needs from the migrations
-- it ships, and tests/python/test_migrations.py checks the two agree.
-- Returns: integer. Raises: nothing. Tables: none.
create or replace function pgclaim.schema_version()
returns integer
language sql
immutable
security definer
set search_path = pg_catalog, pg_temp
as $fn$
    select 3;
$fn$;

comment on function pgclaim.schema_version() is
'The version of the installed pgclaim schema.';
