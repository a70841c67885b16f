-- pgclaim.enqueue(queue, payload, priority, run_at, dedup_key, max_attempts)
-- Adds one record. With a dedup_key that an unfinished (pending or running)
-- record of the queue already has, adds nothing and returns that record's id.
-- Notifies channel pgclaim_<queue> when the record is due now, unless the queue
-- has a backlog its workers are draining (see _wake); PostgreSQL folds repeated
-- notifications of one transaction into one.
-- Returns: the record's id.
-- Raises: PC001 unknown queue; 42501 no enqueue privilege on a restricted queue;
-- 22004 null payload or priority; 22023 payload over max_payload_bytes, priority
-- outside the queue's range, run_at not finite, max_attempts above the queue's,
-- dedup_key empty or over 512 bytes (_check_enqueue).
-- Tables: queues (key share), queue_grants (read), records (insert).
create or replace function pgclaim.enqueue(
    queue text,
    payload jsonb,
    priority integer default 0,
    run_at timestamptz default null,
    dedup_key text default null,
    max_attempts integer default null
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
begin
    v_q := pgclaim._queue(enqueue.queue, true);
    if enqueue.payload is null then
        raise exception using
            errcode = '22004',
            message = pg_catalog.format(
                'pgclaim: payload must not be null (queue %L)', enqueue.queue);
    end if;
    perform pgclaim._check_enqueue(
        v_q, enqueue.priority, v_run_at, enqueue.max_attempts,
        pg_catalog.pg_column_size(enqueue.payload));
    if enqueue.dedup_key is not null then
        perform pgclaim._check_text('dedup_key', enqueue.dedup_key, 512);
    end if;

    loop
        insert into pgclaim.records as r (
            queue, priority, run_at, payload, max_attempts, dedup_key, enqueued_at
        ) values (
            enqueue.queue, enqueue.priority, v_run_at, enqueue.payload,
            coalesce(enqueue.max_attempts, v_q.max_attempts), enqueue.dedup_key, v_now
        )
        on conflict (queue, dedup_key)
        where dedup_key is not null and status in ('pending', 'running')
        do nothing
        returning r.id into v_id;
        exit when v_id is not null;
        -- A record with this dedup_key is unfinished: return it. It may finish
        -- between the insert and this read; then try the insert again.
        select r.id into v_id from pgclaim.records as r
        where r.queue = enqueue.queue and r.dedup_key = enqueue.dedup_key
          and r.status in ('pending', 'running');
        if found then
            return v_id;
        end if;
    end loop;

    if v_run_at <= v_now then
        perform pgclaim._wake(enqueue.queue, v_now);
    end if;
    return v_id;
end;
$fn$;

comment on function pgclaim.enqueue(text, jsonb, integer, timestamptz, text, integer) is
'Adds a record to a queue and returns its id; with a dedup_key already held by an '
'unfinished record, returns that record''s id instead. Raises PC001, 22004, 22023.';
