-- pgclaim._require(queue, privilege, role): refuses a call on a restricted
-- queue by a role without the privilege (see _allowed).
-- Returns: nothing. Raises: 42501 insufficient_privilege. Tables: queue_grants (read).
create or replace function pgclaim._require(q pgclaim.queues, privilege text, role oid)
returns void
language plpgsql
stable
set search_path = pg_catalog, pg_temp
as $fn$
begin
    -- A queue without grants is open: decided here without a call (claims pass here).
    if not q.restricted then
        return;
    end if;
    if not pgclaim._allowed(q.queue, q.restricted, _require.privilege, _require.role) then
        raise exception using
            errcode = '42501',
            message = pg_catalog.format(
                'pgclaim: role %s may not %s queue %L',
                coalesce(pg_catalog.quote_ident(
                    (select a.rolname::text from pg_catalog.pg_roles as a
                     where a.oid = _require.role)), 'unknown'),
                case _require.privilege
                    when 'enqueue' then 'enqueue into'
                    when 'claim' then 'claim from'
                    else 'read'
                end,
                q.queue),
            hint = 'An admin grants it with pgclaim.grant_queue(queue, role, privileges).';
    end if;
end;
$fn$;

comment on function pgclaim._require(pgclaim.queues, text, oid) is
'Internal: raises 42501 unless role has privilege on the queue.';
