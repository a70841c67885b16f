-- pgclaim._caller(): the role a call is made as: the role set with SET ROLE when
-- one is in force, else the session's login role. Inside a SECURITY DEFINER
-- function current_user is the owner, so it cannot serve; session_user alone
-- would ignore SET ROLE. A claim records this role, and only it (or a member of
-- pgclaim_admin) may report on the record (docs/security.md).
-- Returns: the role's oid. Raises: nothing. Tables: none (pg_roles).
create or replace function pgclaim._caller()
returns oid
language sql
stable
set search_path = pg_catalog, pg_temp
as $fn$
    select a.oid from pg_catalog.pg_roles as a
    where a.rolname = coalesce(
        nullif(pg_catalog.current_setting('role'), 'none'), session_user::text
    );
$fn$;

comment on function pgclaim._caller() is
'Internal: the role a call is made as (SET ROLE in force, else the login role).';
