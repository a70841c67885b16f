-- pgclaim._check_grant(queue, role, privileges): validates the arguments of
-- grant_queue and revoke_queue.
-- Returns: the role's oid. Raises: PC001 unknown queue; 42704 unknown role; 22004
-- null role, privileges or element; 22023 empty privileges, privileges of more
-- than one dimension or an unknown privilege.
-- Tables: queues (read).
create or replace function pgclaim._check_grant(queue text, role text, privileges text[])
returns oid
language plpgsql
stable
set search_path = pg_catalog, pg_temp
as $fn$
declare
    v_role oid;
    v_at integer;
    v_bad text;
begin
    perform pgclaim._queue(_check_grant.queue);
    if _check_grant.role is null then
        raise exception using errcode = '22004', message = 'pgclaim: role must not be null';
    end if;
    select a.oid into v_role from pg_catalog.pg_roles as a where a.rolname = _check_grant.role;
    if v_role is null then
        raise exception using
            errcode = '42704',
            message = pg_catalog.format(
                'pgclaim: role %s does not exist', pgclaim._show(_check_grant.role));
    end if;
    if _check_grant.privileges is null then
        raise exception using
            errcode = '22004', message = 'pgclaim: privileges must not be null';
    end if;
    if pg_catalog.array_ndims(_check_grant.privileges) > 1 then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format('pgclaim: privileges must have one dimension, got %s',
                pg_catalog.array_ndims(_check_grant.privileges));
    end if;
    v_at := pg_catalog.array_position(_check_grant.privileges, null);
    if v_at is not null then
        raise exception using
            errcode = '22004',
            message = pg_catalog.format('pgclaim: privileges[%s] must not be null', v_at);
    end if;
    select p.p into v_bad from pg_catalog.unnest(_check_grant.privileges) as p (p)
    where p.p not in ('enqueue', 'claim', 'read') limit 1;
    if v_bad is not null or pg_catalog.cardinality(_check_grant.privileges) = 0 then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format(
                'pgclaim: invalid privilege %s', pgclaim._show(coalesce(v_bad, '(none)'))),
            hint = 'The privileges are enqueue, claim and read.';
    end if;
    return v_role;
end;
$fn$;

comment on function pgclaim._check_grant(text, text, text[]) is
'Internal: validates the arguments of grant_queue and revoke_queue; returns the role.';
