-- pgclaim._check_enqueue(q, priority, run_at, max_attempts, payload_bytes, at):
-- the values enqueue, enqueue_batch, enqueue_items (per item) and schedule
-- refuse, against the queue's limits: priority null or outside
-- [min_priority, max_priority], run_at not finite, max_attempts outside
-- [1, the queue's max_attempts] (a record may ask for fewer attempts, never
-- more), a payload larger than max_payload_bytes (at names its position in a batch).
-- Reads no table: the enqueue privilege is the caller's to check (_require), once
-- per call however many records it adds.
-- Returns: nothing. Raises: 22004, 22023. Tables: none.
create or replace function pgclaim._check_enqueue(
    q pgclaim.queues,
    priority integer,
    run_at timestamptz,
    max_attempts integer,
    payload_bytes bigint,
    at integer default null
)
returns void
language plpgsql
stable
set search_path = pg_catalog, pg_temp
as $fn$
begin
    perform pgclaim._check_int('priority', _check_enqueue.priority, q.min_priority, q.max_priority);
    if not pg_catalog.isfinite(_check_enqueue.run_at) then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format(
                'pgclaim: run_at must be a finite time, got %s', _check_enqueue.run_at);
    end if;
    perform pgclaim._check_int('max_attempts', _check_enqueue.max_attempts, 1, q.max_attempts, true);
    if _check_enqueue.payload_bytes > q.max_payload_bytes then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format(
                'pgclaim: %s is %s bytes, more than queue %L allows (max_payload_bytes %s)',
                case when _check_enqueue.at is null then 'payload'
                     else pg_catalog.format('payloads[%s]', _check_enqueue.at) end,
                _check_enqueue.payload_bytes, q.queue, q.max_payload_bytes);
    end if;
end;
$fn$;

comment on function pgclaim._check_enqueue(
    pgclaim.queues, integer, timestamptz, integer, bigint, integer
) is
'Internal: raises 22004/22023 unless a record with these values fits the queue''s limits.';
