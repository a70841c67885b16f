-- pgclaim._admin(role): whether role is a member of pgclaim_admin (superusers
-- are members of every role). Admins may act on every queue and every worker's
-- records; everyone else only on what their own role holds.
-- Returns: boolean. Raises: nothing. Tables: none.
create or replace function pgclaim._admin(role oid)
returns boolean
language plpgsql
stable
set search_path = pg_catalog, pg_temp
as $fn$
begin
    return coalesce(pg_catalog.pg_has_role(_admin.role, 'pgclaim_admin', 'member'), false);
end;
$fn$;

comment on function pgclaim._admin(oid) is
'Internal: whether role is a member of pgclaim_admin.';
