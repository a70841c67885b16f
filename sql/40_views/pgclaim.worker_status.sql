-- pgclaim.worker_status: registered workers, their last heartbeat, whether they
-- count as alive (heard from within config.worker_timeout) and what they hold.
create or replace view pgclaim.worker_status as
select
    w.worker_id,
    w.info,
    w.started_at,
    w.last_seen,
    pgclaim._now() - w.last_seen as silent_for,
    w.last_seen >= pgclaim._now() - c.worker_timeout as alive,
    (
        select pg_catalog.count(*) from pgclaim.records as r
        where r.worker_id = w.worker_id and r.status = 'running'
    ) as held
from pgclaim.workers as w
cross join pgclaim.config as c;

comment on view pgclaim.worker_status is
'Registered workers: last_seen, silent_for, alive (within worker_timeout), held records.';
