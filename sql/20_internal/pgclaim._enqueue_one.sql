-- pgclaim._enqueue_one(q, payload, priority, run_at, dedup_key, max_attempts,
--     group_key, now): adds one checked record to queue q, the one path of enqueue
-- and of the items of enqueue_items that have a dedup_key or a group_key.
-- dedup_key: an unfinished record of the queue with the key is returned instead
-- (and, with the queue's dedup_window, a record with the key that finished within
-- the window: looked up before the insert, and again after it, because a record
-- that finished while the insert waited for it shows only then; this call's
-- record is then taken out again). group_key: the record joins that FIFO group,
-- as its head when the group has no unfinished record, else behind the head
-- (pending, priority -2147483648 and run_at 'infinity', which no claim reaches;
-- its own priority and due time in pgclaim.waiting) until _promote
-- hands it the group; see _group_join for why no group is left without a head.
-- Returns: (id, created): the record's id, and false when it is an existing
-- record's. Raises: nothing (callers check the input).
-- Tables: records (insert, delete), groups (insert, update, delete), waiting
-- (insert, delete), dedup_keys (read).
create or replace function pgclaim._enqueue_one(
    q pgclaim.queues,
    payload jsonb,
    priority integer,
    run_at timestamptz,
    dedup_key text,
    max_attempts integer,
    group_key text,
    now timestamptz,
    out id bigint,
    out created boolean
)
language plpgsql
volatile
set search_path = pg_catalog, pg_temp
as $fn$
#variable_conflict use_column
declare
    v_blocked boolean := false;
    v_window boolean := q.dedup_window is not null and _enqueue_one.dedup_key is not null;
    v_old bigint;
begin
    created := false;
    loop
        -- Within the window a finished record's key is taken (again after a record
        -- with the key finished between an insert and the read below).
        if v_window then
            select k.id into id from pgclaim.dedup_keys as k
            where k.queue = q.queue and k.dedup_key = _enqueue_one.dedup_key
              and k.finished_at >= _enqueue_one.now - q.dedup_window;
            if found then
                return;
            end if;
        end if;
        if _enqueue_one.group_key is not null then
            v_blocked := pgclaim._group_join(q.queue, _enqueue_one.group_key);
        end if;
        insert into pgclaim.records as r (
            queue, priority, run_at, payload, max_attempts, dedup_key, enqueued_at, group_key
        ) values (
            q.queue,
            case when v_blocked then -2147483648 else _enqueue_one.priority end,
            case when v_blocked then 'infinity'::timestamptz else _enqueue_one.run_at end,
            _enqueue_one.payload, coalesce(_enqueue_one.max_attempts, q.max_attempts),
            _enqueue_one.dedup_key, _enqueue_one.now, _enqueue_one.group_key
        )
        on conflict (queue, dedup_key)
        where dedup_key is not null and status in ('pending', 'running')
        do nothing
        returning r.id into id;
        if id is not null then
            if v_blocked then
                insert into pgclaim.waiting as w (id, queue, group_key, priority, run_at)
                values (
                    _enqueue_one.id, q.queue, _enqueue_one.group_key, _enqueue_one.priority,
                    _enqueue_one.run_at
                );
            end if;
            created := true;
            exit;
        end if;
        -- Nothing added: a group this call made for the record goes again.
        if _enqueue_one.group_key is not null and not v_blocked then
            delete from pgclaim.groups as g
            where g.queue = q.queue and g.group_key = _enqueue_one.group_key;
        end if;
        -- A record with this dedup_key is unfinished: return it. It may finish
        -- between the insert and this read; then try the insert again.
        select r.id into id from pgclaim.records as r
        where r.queue = q.queue and r.dedup_key = _enqueue_one.dedup_key
          and r.status in ('pending', 'running');
        if found then
            return;
        end if;
    end loop;
    if v_window then
        -- Our insert may have waited for a record with the key to finish: that
        -- record shows now. Then ours was never there.
        select k.id into v_old from pgclaim.dedup_keys as k
        where k.queue = q.queue and k.dedup_key = _enqueue_one.dedup_key
          and k.finished_at >= _enqueue_one.now - q.dedup_window;
        if found then
            delete from pgclaim.records as r where r.id = _enqueue_one.id;
            delete from pgclaim.waiting as w where w.id = _enqueue_one.id;
            if _enqueue_one.group_key is not null and not v_blocked then
                delete from pgclaim.groups as g
                where g.queue = q.queue and g.group_key = _enqueue_one.group_key;
            end if;
            id := v_old;
            created := false;
        end if;
    end if;
end;
$fn$;

comment on function pgclaim._enqueue_one(
    pgclaim.queues, jsonb, integer, timestamptz, text, integer, text, timestamptz
) is
'Internal: adds one checked record (dedup_key, dedup_window, FIFO group); returns its id '
'and whether it is new.';
