-- pgclaim._allowed(queue, restricted, privilege, role): whether role may use the
-- queue for privilege ('enqueue', 'claim' or 'read'). A queue without grants
-- (restricted false) is open to the pgclaim roles; once grant_queue restricted it,
-- only members of a granted role and pgclaim_admin may. Grants of a dropped role
-- count for nobody.
-- Security definer: the views call it in their reader's name, and readers do
-- not reach the tables.
-- Returns: boolean. Raises: nothing. Tables: queue_grants (read).
create or replace function pgclaim._allowed(
    queue text, restricted boolean, privilege text, role oid
)
returns boolean
language sql
stable
security definer
set search_path = pg_catalog, pg_temp
as $fn$
    select not _allowed.restricted
        or pgclaim._admin(_allowed.role)
        or exists (
            select from pgclaim.queue_grants as g
            inner join pg_catalog.pg_roles as a on g.grantee = a.oid
            where g.queue = _allowed.queue and g.privilege = _allowed.privilege
              and pg_catalog.pg_has_role(_allowed.role, g.grantee, 'member')
        );
$fn$;

comment on function pgclaim._allowed(text, boolean, text, oid) is
'Internal: whether role may enqueue into, claim from or read a queue.';
