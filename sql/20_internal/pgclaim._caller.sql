-- pgclaim._caller(): the role a call is made as: the role set with SET ROLE when
-- one is in force, else the session's login role. Inside a SECURITY DEFINER
-- function current_user is the owner, so it cannot serve; session_user alone
-- would ignore SET ROLE. A claim records this role, and only it (or a member of
-- pgclaim_admin) may report on the record (docs/security.md).
-- Returns: the role's oid. Raises: nothing. Tables: none.
create or replace function pgclaim._caller()
returns oid
language plpgsql
stable
set search_path = pg_catalog, pg_temp
as $fn$
begin
    -- PL/pgSQL evaluates this as a simple expression (a cache lookup), where a query
    -- on pg_roles would be planned at every call: every claim and report asks.
    return coalesce(
        pg_catalog.to_regrole(pg_catalog.quote_ident(
            nullif(pg_catalog.current_setting('role'), 'none'))),
        pg_catalog.to_regrole(pg_catalog.quote_ident(session_user::text))
    )::oid;
end;
$fn$;

comment on function pgclaim._caller() is
'Internal: the role a call is made as (SET ROLE in force, else the login role).';
