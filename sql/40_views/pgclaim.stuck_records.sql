-- pgclaim.stuck_records: running records that nobody is working on any more:
-- their lease has expired, or their worker has stopped heartbeating. They come
-- back with the next claim_batch sweep or reclaim_orphans. Only records of the
-- queues the reader may read are listed.
-- security_barrier: no function of the reader's runs before that filter.
create or replace view pgclaim.stuck_records with (security_barrier) as
with k as (select pgclaim._caller() as me)

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
inner join pgclaim.queues as q on r.queue = q.queue
cross join pgclaim.config as c
cross join k
-- A worker id counts only for the records its own role claimed (as in _reclaim).
left join pgclaim.workers as w
    on
        r.worker_id = w.worker_id
        and (
            r.holder_role = w.owner_role or w.owner_role is null or r.holder_role is null
        )
where
    r.status = 'running'
    and pgclaim._allowed(q.queue, q.restricted, 'read', k.me)
    and (
        r.lease_until < pgclaim._now()
        or w.last_seen < pgclaim._now() - c.worker_timeout
    );

comment on view pgclaim.stuck_records is
'Running records whose lease expired or whose worker went silent, with the reason.';
