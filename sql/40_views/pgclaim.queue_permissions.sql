-- pgclaim.queue_permissions: the per-queue grants (grant_queue), one row per
-- queue and role with its privileges. Only pgclaim_admin reads it.
create or replace view pgclaim.queue_permissions with (security_barrier) as
select
    g.queue,
    coalesce(a.rolname::text collate "C", g.grantee::text) as role,
    pg_catalog.array_agg(g.privilege order by g.privilege) as privileges,
    pg_catalog.max(g.granted_at) as granted_at
from pgclaim.queue_grants as g
left join pg_catalog.pg_roles as a on g.grantee = a.oid
group by g.queue, g.grantee, a.rolname;

comment on view pgclaim.queue_permissions is
'Per-queue grants: queue, role, privileges (enqueue, claim, read), last granted_at.';
