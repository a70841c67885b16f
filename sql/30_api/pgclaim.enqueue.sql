-- pgclaim.enqueue(queue, payload, priority, run_at, dedup_key, max_attempts,
--     group_key)
-- Adds one record. With a dedup_key that an unfinished (pending or running)
-- record of the queue already has, adds nothing and returns that record's id.
-- With a group_key, the record joins that FIFO group: it is the group's head when
-- the group has no unfinished record, else it waits behind the head (pending,
-- run_at 'infinity', its due time in pgclaim.waiting) until _promote hands it
-- the group (see _group_join for why no group is ever left without a head).
-- Returns: the record's id.
-- Raises: PC001 unknown queue; 42501 no enqueue privilege on a restricted queue;
-- 22004 null payload or priority; 22023 payload over max_payload_bytes, priority
-- outside the queue's range, run_at not finite, max_attempts above the queue's,
-- dedup_key or group_key empty or over 512 bytes (_check_enqueue).
-- Tables: queues (key share), queue_grants (read), records (insert), groups (insert,
-- update, delete), waiting (insert).
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
    v_blocked boolean := false;
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
    if enqueue.group_key is not null then
        perform pgclaim._check_text('group_key', enqueue.group_key, 512);
    end if;

    loop
        if enqueue.group_key is not null then
            v_blocked := pgclaim._group_join(enqueue.queue, enqueue.group_key);
        end if;
        insert into pgclaim.records as r (
            queue, priority, run_at, payload, max_attempts, dedup_key, enqueued_at, group_key
        ) values (
            enqueue.queue, enqueue.priority,
            case when v_blocked then 'infinity'::timestamptz else v_run_at end,
            enqueue.payload, coalesce(enqueue.max_attempts, v_q.max_attempts),
            enqueue.dedup_key, v_now, enqueue.group_key
        )
        on conflict (queue, dedup_key)
        where dedup_key is not null and status in ('pending', 'running')
        do nothing
        returning r.id into v_id;
        if v_id is not null then
            if v_blocked then
                insert into pgclaim.waiting (id, queue, group_key, priority, run_at)
                values (v_id, enqueue.queue, enqueue.group_key, enqueue.priority, v_run_at);
            end if;
            exit;
        end if;
        -- Nothing added: a group this call made for the record goes again.
        if enqueue.group_key is not null and not v_blocked then
            delete from pgclaim.groups as g
            where g.queue = enqueue.queue and g.group_key = enqueue.group_key;
        end if;
        -- A record with this dedup_key is unfinished: return it. It may finish
        -- between the insert and this read; then try the insert again.
        select r.id into v_id from pgclaim.records as r
        where r.queue = enqueue.queue and r.dedup_key = enqueue.dedup_key
          and r.status in ('pending', 'running');
        if found then
            return v_id;
        end if;
    end loop;

    if v_run_at <= v_now and not v_blocked then
        perform pgclaim._wake(enqueue.queue, v_now);
    end if;
    return v_id;
end;
$fn$;

comment on function pgclaim.enqueue(text, jsonb, integer, timestamptz, text, integer, text) is
'Adds a record to a queue and returns its id; with a dedup_key already held by an '
'unfinished record, returns that record''s id instead; with a group_key it waits behind '
'the unfinished records of its group. Raises PC001, 22004, 22023.';
