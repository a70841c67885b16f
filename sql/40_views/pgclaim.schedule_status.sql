-- pgclaim.schedule_status: every periodic schedule, what it enqueues, its slot
-- last enqueued (and that record's id) and its next slot. Admins read it.
create or replace view pgclaim.schedule_status with (security_barrier) as
select
    s.name,
    s.queue,
    s.cron,
    s.every,
    s.timezone,
    s.payload,
    s.priority,
    s.max_attempts,
    s.group_key,
    s.last_slot,
    s.last_id,
    s.next_slot,
    s.created_at
from pgclaim.schedules as s;

comment on view pgclaim.schedule_status is
'Periodic schedules: queue, cron or every, timezone, the record each enqueues, the slot '
'last enqueued (last_slot, last_id) and the next slot.';
