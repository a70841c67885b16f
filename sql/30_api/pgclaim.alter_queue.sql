-- pgclaim.alter_queue(queue, lease, max_attempts, backoff_base, backoff_max,
--     retention, max_payload_bytes, max_lease, min_priority, max_priority, max_batch)
-- Changes the settings given (null leaves a setting alone); the queue's settings
-- must be valid together afterwards. Records already enqueued keep their
-- max_attempts and priority; running records keep their lease.
-- Returns: nothing. Raises: PC001 unknown queue, 22004/22023 bad input.
-- Tables: queues (update).
create or replace function pgclaim.alter_queue(
    queue text,
    lease interval default null,
    max_attempts integer default null,
    backoff_base interval default null,
    backoff_max interval default null,
    retention interval default null,
    max_payload_bytes integer default null,
    max_lease interval default null,
    min_priority integer default null,
    max_priority integer default null,
    max_batch integer default null
)
returns void
language plpgsql
volatile
security definer
set search_path = pg_catalog, pg_temp
as $fn$
declare
    v_q pgclaim.queues := pgclaim._queue(alter_queue.queue);
begin
    v_q.lease := coalesce(alter_queue.lease, v_q.lease);
    v_q.max_attempts := coalesce(alter_queue.max_attempts, v_q.max_attempts);
    v_q.backoff_base := coalesce(alter_queue.backoff_base, v_q.backoff_base);
    v_q.backoff_max := coalesce(alter_queue.backoff_max, v_q.backoff_max);
    v_q.retention := coalesce(alter_queue.retention, v_q.retention);
    v_q.max_payload_bytes := coalesce(alter_queue.max_payload_bytes, v_q.max_payload_bytes);
    v_q.max_lease := coalesce(alter_queue.max_lease, v_q.max_lease);
    v_q.min_priority := coalesce(alter_queue.min_priority, v_q.min_priority);
    v_q.max_priority := coalesce(alter_queue.max_priority, v_q.max_priority);
    v_q.max_batch := coalesce(alter_queue.max_batch, v_q.max_batch);
    perform pgclaim._check_settings(v_q);
    update pgclaim.queues as q set
        lease = v_q.lease,
        max_attempts = v_q.max_attempts,
        backoff_base = v_q.backoff_base,
        backoff_max = v_q.backoff_max,
        retention = v_q.retention,
        max_payload_bytes = v_q.max_payload_bytes,
        max_lease = v_q.max_lease,
        min_priority = v_q.min_priority,
        max_priority = v_q.max_priority,
        max_batch = v_q.max_batch
    where q.queue = alter_queue.queue;
end;
$fn$;

comment on function pgclaim.alter_queue(
    text, interval, integer, interval, interval, interval, integer, interval, integer, integer,
    integer
) is
'Changes the given settings and limits of a queue (null leaves one alone); they must be '
'valid together. Raises PC001 for an unknown queue, 22004/22023 for a bad setting.';
