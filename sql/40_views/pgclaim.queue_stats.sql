-- pgclaim.queue_stats: one row per queue with its counts by state (defined in
-- _queue_counts, which health() reads too). pending counts records due now,
-- scheduled those due later (neither counts the records blocked behind the head
-- of their group: blocked does); oldest_pending_age is how long the longest-waiting
-- due record has waited. The completed total costs one pass over the table: keep
-- finished records purged. Only the queues the reader may read are listed.
-- security_barrier: no function of the reader's runs before that filter.
create or replace view pgclaim.queue_stats with (security_barrier) as
select
    c.queue,
    c.paused,
    c.pending,
    c.scheduled,
    c.running,
    c.completed,
    c.failed,
    c.cancelled,
    c.oldest_pending_age,
    c.completed_last_minute,
    c.blocked
from pgclaim._queue_counts(true) as c;

comment on view pgclaim.queue_stats is
'Per queue: pending (due), scheduled (due later), running, completed, failed, cancelled, '
'oldest_pending_age, completed_last_minute, blocked (waiting behind their group''s head).';
