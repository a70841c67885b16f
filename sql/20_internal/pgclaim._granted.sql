-- pgclaim._granted(queue, role): the privileges granted to role on queue.
-- Returns: text[], sorted (empty when none). Raises: nothing.
-- Tables: queue_grants (read).
create or replace function pgclaim._granted(queue text, role oid)
returns text[]
language sql
stable
set search_path = pg_catalog, pg_temp
as $fn$
    select coalesce(pg_catalog.array_agg(g.privilege order by g.privilege), '{}')
    from pgclaim.queue_grants as g
    where g.queue = _granted.queue and g.grantee = _granted.role;
$fn$;

comment on function pgclaim._granted(text, oid) is
'Internal: the privileges granted to role on queue, sorted.';
