-- pgclaim: the roles, checked before anything is created.
--
-- pgclaim_owner     NOLOGIN; owns schema pgclaim and everything in it, so the
--                   SECURITY DEFINER functions run with no privilege beyond
--                   pgclaim's own objects (never as the installer or a superuser)
-- pgclaim_producer  enqueues
-- pgclaim_worker    claims and reports on the records it holds
-- pgclaim_admin     everything, on every queue and every worker's records
--
-- Roles are cluster-wide, so several databases of one cluster share them. A role
-- that pgclaim made carries the comment below; a pgclaim_* role that exists without
-- it, or that can log in or holds any attribute beyond NOLOGIN, was made by someone
-- else: installing stops with 42710 rather than hand it pgclaim's privileges, unless
-- the installer opts in with the setting pgclaim.adopt_existing = on (then the role
-- is adopted and marked). Release 0.1.0 did not mark its roles: upgrading a database
-- whose schema pgclaim the installer owns marks them, when they have no attribute.
-- Creating roles needs CREATEROLE; the installer becomes a member of pgclaim_owner
-- so that it (and later migrations) can manage its objects.
-- Idempotent: the fresh install (sql/), the upgrade migrations and `pgclaim migrate`
-- before its first migration all run this file.

-- Whatever the installer's search_path, nothing of the caller's (a schema of its
-- own, its temporary objects) is resolved while pgclaim is installed: an operator
-- or type planted there could otherwise be bound into an index predicate, a view
-- or a function signature. Every file after this one runs under this setting.
set local search_path = pg_catalog, pg_temp;

do $do$
declare
    v_marker constant text := 'pgclaim role (made by the pgclaim installer)';
    v_adopt boolean := coalesce(
        pg_catalog.current_setting('pgclaim.adopt_existing', true), ''
    ) in ('on', 'true', '1', 'yes');
    -- Upgrading 0.1.0: the installer owns the schema that made the unmarked roles.
    v_upgrade boolean := exists (
        select from pg_catalog.pg_namespace as n
        where n.nspname = 'pgclaim' and n.nspowner = (
            select a.oid from pg_catalog.pg_roles as a where a.rolname = current_user
        )
    );
    v_name text;
    v_role record;
    v_comment text;
begin
    foreach v_name in array array[
        'pgclaim_owner', 'pgclaim_producer', 'pgclaim_worker', 'pgclaim_admin'
    ] loop
        v_comment := null;
        select
            a.oid, a.rolcanlogin, a.rolsuper, a.rolcreaterole, a.rolcreatedb,
            a.rolreplication, a.rolbypassrls
        into v_role
        from pg_catalog.pg_roles as a where a.rolname = v_name;
        if not found then
            execute pg_catalog.format('create role %I nologin', v_name);
        else
            v_comment := pg_catalog.shobj_description(v_role.oid, 'pg_authid');
            if ((v_comment is distinct from v_marker and not v_upgrade)
                or v_role.rolcanlogin or v_role.rolsuper or v_role.rolcreaterole
                or v_role.rolcreatedb or v_role.rolreplication or v_role.rolbypassrls)
               and not v_adopt then
                raise exception using
                    errcode = '42710',
                    message = pg_catalog.format(
                        'pgclaim: role %s already exists and was not made by pgclaim',
                        v_name),
                    detail = pg_catalog.format(
                        'login %s, superuser %s, createrole %s, comment %L.',
                        v_role.rolcanlogin, v_role.rolsuper, v_role.rolcreaterole,
                        v_comment),
                    hint = 'Drop it, or adopt it on purpose with the setting '
                    'pgclaim.adopt_existing = on (pgclaim migrate --adopt-existing).';
            end if;
        end if;
        if v_comment is distinct from v_marker then
            -- Marking a role needs CREATEROLE: an installer without it adopts the
            -- roles a DBA made for this run only (docs/install.md).
            begin
                execute pg_catalog.format('comment on role %I is %L', v_name, v_marker);
            exception when insufficient_privilege then
                raise notice 'pgclaim: role % adopted but not marked (no CREATEROLE)', v_name;
            end;
        end if;
    end loop;
    if not pg_catalog.pg_has_role('pgclaim_owner', 'member') then
        grant pgclaim_owner to current_user;
    end if;
    -- health() reports the oldest transaction of any role: the owner needs to see them.
    -- A CREATEROLE installer may grant it; without that right, health() sees its own.
    if not pg_catalog.pg_has_role('pgclaim_owner', 'pg_read_all_stats', 'member') then
        begin
            grant pg_read_all_stats to pgclaim_owner;
        exception when insufficient_privilege then
            raise notice 'pgclaim: could not grant pg_read_all_stats to pgclaim_owner; '
                'health() sees only pgclaim_owner''s transactions';
        end;
    end if;
end
$do$;
