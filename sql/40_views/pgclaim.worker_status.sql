-- pgclaim.worker_status: registered workers, their last heartbeat, whether they
-- count as alive (heard from within config.worker_timeout) and what they hold.
-- A reader sees the workers of its own role (pgclaim_admin sees them all).
-- security_barrier: no function of the reader's runs before that filter.
create or replace view pgclaim.worker_status with (security_barrier) as
with k as (select pgclaim._caller() as me)

select
    w.worker_id,
    w.info,
    w.started_at,
    w.last_seen,
    pgclaim._now() - w.last_seen as silent_for,
    w.last_seen >= pgclaim._now() - c.worker_timeout as alive,
    (
        -- A worker id counts only for the records its own role claimed (as in _reclaim
        -- and stuck_records): another role's records under the same id are not shown.
        select pg_catalog.count(*) from pgclaim.records as r
        where
            r.worker_id = w.worker_id and r.status = 'running'
            and (
                r.holder_role = w.owner_role or w.owner_role is null
                or r.holder_role is null
            )
    ) as held
from pgclaim.workers as w
cross join pgclaim.config as c
cross join k
where w.owner_role = k.me or pgclaim._admin(k.me);

comment on view pgclaim.worker_status is
'Registered workers: last_seen, silent_for, alive (within worker_timeout), held records.';
