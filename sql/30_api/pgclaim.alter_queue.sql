-- pgclaim.alter_queue(queue, lease, max_attempts, backoff_base, backoff_max,
--     retention, max_payload_bytes, max_lease, min_priority, max_priority, max_batch,
--     max_running, rate, burst, fair, dedup_window)
-- Changes the settings given (null leaves a setting alone); the queue's settings
-- must be valid together afterwards. max_running 0, rate 0 and dedup_window 0
-- remove that limit (rate 0 removes burst too); a new rate without burst takes
-- burst = the rate (at least 1). A dedup_window set now covers the records that
-- finished within it already (read from pgclaim.finished when it is given).
-- Records already enqueued keep their max_attempts and priority; running records
-- keep their lease.
-- Returns: nothing. Raises: PC001 unknown queue, 22004/22023 bad input.
-- Tables: queues (update), queue_flow (insert, delete), dedup_keys (insert,
-- delete), finished (read).
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
    max_batch integer default null,
    max_running integer default null,
    rate double precision default null,
    burst integer default null,
    fair boolean default null,
    dedup_window interval default null
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
    v_q.fair := coalesce(alter_queue.fair, v_q.fair);
    if alter_queue.max_running is not null then
        v_q.max_running := nullif(alter_queue.max_running, 0);
    end if;
    if alter_queue.rate = 0 then
        v_q.rate := null;
        v_q.burst := null;
    elsif alter_queue.rate is not null then
        v_q.rate := alter_queue.rate;
        v_q.burst := coalesce(alter_queue.burst, pgclaim._default_burst(alter_queue.rate));
    elsif alter_queue.burst is not null then
        v_q.burst := alter_queue.burst;
    end if;
    if alter_queue.dedup_window is not null then
        v_q.dedup_window := nullif(alter_queue.dedup_window, '0'::interval);
    end if;
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
        max_batch = v_q.max_batch,
        max_running = v_q.max_running,
        rate = v_q.rate,
        burst = v_q.burst,
        fair = v_q.fair,
        dedup_window = v_q.dedup_window
    where q.queue = alter_queue.queue;
    perform pgclaim._flow_setup(v_q, alter_queue.dedup_window is not null);
end;
$fn$;

comment on function pgclaim.alter_queue(
    text, interval, integer, interval, interval, interval, integer, interval, integer, integer,
    integer, integer, double precision, integer, boolean, interval
) is
'Changes the given settings and limits of a queue (null leaves one alone); they must be '
'valid together. Raises PC001 for an unknown queue, 22004/22023 for a bad setting.';
