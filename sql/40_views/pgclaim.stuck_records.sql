-- pgclaim.stuck_records: running records that nobody is working on any more:
-- their lease has expired, or their worker has stopped heartbeating. They come
-- back with the next claim_batch sweep or reclaim_orphans.
create or replace view pgclaim.stuck_records as
select
    r.id,
    r.queue,
    r.worker_id,
    r.attempt,
    r.max_attempts,
    r.lease_until,
    case
        when r.lease_until < pgclaim._now() then 'lease expired'
        else 'worker silent'
    end as reason,
    pgclaim._now() - coalesce(
        least(r.lease_until, w.last_seen + c.worker_timeout), r.lease_until
    ) as stuck_for
from pgclaim.records as r
cross join pgclaim.config as c
left join pgclaim.workers as w on r.worker_id = w.worker_id
where
    r.status = 'running'
    and (
        r.lease_until < pgclaim._now()
        or w.last_seen < pgclaim._now() - c.worker_timeout
    );

comment on view pgclaim.stuck_records is
'Running records whose lease expired or whose worker went silent, with the reason.';
