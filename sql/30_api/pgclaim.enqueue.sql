-- pgclaim.enqueue(queue, payload, priority, run_at, dedup_key, max_attempts,
--     group_key)
-- Adds one record. With a dedup_key that an unfinished (pending or running)
-- record of the queue already has (or, with the queue's dedup_window, a record
-- that finished within it), adds nothing and returns that record's id. With a
-- group_key the record joins that FIFO group (_enqueue_one).
-- Returns: the record's id.
-- Raises: PC001 unknown queue; 42501 no enqueue privilege on a restricted queue;
-- 22004 null payload or priority; 22023 payload over max_payload_bytes, priority
-- outside the queue's range, run_at not finite, max_attempts above the queue's,
-- dedup_key or group_key empty or over 512 bytes (_require, _check_enqueue).
-- Tables: queues (key share), queue_grants (read), and _enqueue_one's.
create or replace function pgclaim.enqueue(
    queue text,
    payload jsonb,
    priority integer default 0,
    run_at timestamptz default null,
    dedup_key text default null,
    max_attempts integer default null,
    group_key text default null
)
returns bigint
language plpgsql
volatile
security definer
set search_path = pg_catalog, pg_temp
as $fn$
#variable_conflict use_column
declare
    v_q pgclaim.queues;
    v_now timestamptz := pgclaim._now();
    v_run_at timestamptz := coalesce(enqueue.run_at, v_now);
    v_id bigint;
    v_created boolean;
begin
    v_q := pgclaim._queue(enqueue.queue, true);
    if enqueue.payload is null then
        raise exception using
            errcode = '22004',
            message = pg_catalog.format(
                'pgclaim: payload must not be null (queue %L)', enqueue.queue);
    end if;
    perform pgclaim._require(v_q, 'enqueue', pgclaim._caller());
    perform pgclaim._check_enqueue(
        v_q, enqueue.priority, v_run_at, enqueue.max_attempts,
        pg_catalog.pg_column_size(enqueue.payload));
    if enqueue.dedup_key is not null then
        perform pgclaim._check_text('dedup_key', enqueue.dedup_key, 512);
    end if;
    if enqueue.group_key is not null then
        perform pgclaim._check_text('group_key', enqueue.group_key, 512);
    end if;

    select e.id, e.created into v_id, v_created
    from pgclaim._enqueue_one(
        v_q, enqueue.payload, enqueue.priority, v_run_at, enqueue.dedup_key,
        enqueue.max_attempts, enqueue.group_key, v_now
    ) as e;
    if v_created and v_run_at <= v_now then
        perform pgclaim._wake(enqueue.queue, v_now);
    end if;
    return v_id;
end;
$fn$;

comment on function pgclaim.enqueue(text, jsonb, integer, timestamptz, text, integer, text) is
'Adds a record to a queue and returns its id; with a dedup_key already held by an '
'unfinished record, returns that record''s id instead; with a group_key it waits behind '
'the unfinished records of its group. Raises PC001, 22004, 22023.';
