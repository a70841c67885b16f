-- pgclaim.queue_permissions: the per-queue grants (grant_queue), one row per
-- queue and role with its privileges. Only pgclaim_admin reads it.
create or replace view pgclaim.queue_permissions with (security_barrier) as
select
    g.queue,
    -- The role's name (or 'unknown (OID=n)' once dropped), as text in the database's
    -- collation (a name is in "C").
    pg_catalog.pg_get_userbyid(g.grantee)::text collate "default" as role,  -- noqa: RF03
    pg_catalog.array_agg(g.privilege order by g.privilege) as privileges,
    pg_catalog.max(g.granted_at) as granted_at
from pgclaim.queue_grants as g
group by g.queue, g.grantee;

comment on view pgclaim.queue_permissions is
'Per-queue grants: queue, role, privileges (enqueue, claim, read), last granted_at.';
