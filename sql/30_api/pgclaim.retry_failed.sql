-- pgclaim.retry_failed(queue, ids): failed records of the queue (all, or those
-- among ids) go back from pgclaim.finished to pending, due now, with their attempts
-- reset and their ids kept. A dedup_key
-- stays unique among unfinished records: a failed record whose key an unfinished
-- record holds is skipped, and of failed records sharing a key only the newest
-- is retried. A record of a FIFO group goes back as its group's head when the
-- group has no unfinished record, and otherwise waits blocked behind the group's
-- records like a record enqueued now (its run_at is now).
-- Returns: how many. Raises: PC001 unknown queue; 22004 a null element of ids;
-- 22023 more ids than config.max_ids. Waits at most 5 s for row locks (55P03).
-- Tables: finished (delete), records (insert), groups (insert, update, delete),
-- waiting (insert).
create or replace function pgclaim.retry_failed(queue text, ids bigint[] default null)
returns integer
language plpgsql
volatile
security definer
set search_path = pg_catalog, pg_temp
set lock_timeout = '5s'
as $fn$
#variable_conflict use_column
declare
    v_now timestamptz := pgclaim._now();
    v_count integer;
    v_f record;
    v_id bigint;
    v_blocked boolean;
begin
    perform pgclaim._queue(retry_failed.queue);
    if retry_failed.ids is not null then
        perform pgclaim._check_ids(retry_failed.ids, null);
    end if;
    -- Back into pgclaim.records first, with their ids; a record whose dedup_key an
    -- unfinished record took in the meantime conflicts and stays where it is. Then
    -- only the records that went back leave pgclaim.finished.
    with
    back as (
        insert into pgclaim.records as r (
            id, queue, status, priority, run_at, payload, attempt, max_attempts, dedup_key,
            enqueued_at, last_error
        ) overriding system value
        select
            f.id, f.queue, 'pending', f.priority, v_now, f.payload, 0, f.max_attempts,
            f.dedup_key, f.enqueued_at, f.last_error
        from pgclaim.finished as f
        where f.queue = retry_failed.queue
          and f.status = 'failed'
          and (retry_failed.ids is null or f.id = any(retry_failed.ids))
          and f.group_key is null
          -- of failed records sharing a dedup_key, only the newest goes back
          and (f.dedup_key is null or not exists (
              select from pgclaim.finished as n
              where n.queue = f.queue and n.dedup_key = f.dedup_key
                and n.status = 'failed' and n.id > f.id
                and (retry_failed.ids is null or n.id = any(retry_failed.ids))
          ))
        order by f.id
        for update of f
        on conflict (queue, dedup_key)
        where dedup_key is not null and status in ('pending', 'running')
        do nothing
        returning r.id
    ),

    gone as (
        delete from pgclaim.finished as f
        where f.id in (select b.id from back as b)
        returning f.id
    )

    select pg_catalog.count(*)::integer into v_count from gone;

    -- Records of groups, one at a time in the order they go back in (rare: an
    -- operator's action): each joins its group as enqueue adds a record.
    for v_f in
        select f.* from pgclaim.finished as f
        where f.queue = retry_failed.queue
          and f.status = 'failed'
          and (retry_failed.ids is null or f.id = any(retry_failed.ids))
          and f.group_key is not null
          and (f.dedup_key is null or not exists (
              select from pgclaim.finished as n
              where n.queue = f.queue and n.dedup_key = f.dedup_key
                and n.status = 'failed' and n.id > f.id
                and (retry_failed.ids is null or n.id = any(retry_failed.ids))
          ))
        order by f.priority desc, f.id
        for update of f
    loop
        v_blocked := pgclaim._group_join(v_f.queue, v_f.group_key);
        insert into pgclaim.records as r (
            id, queue, status, priority, run_at, payload, attempt, max_attempts,
            dedup_key, enqueued_at, last_error, group_key
        ) overriding system value
        values (
            v_f.id, v_f.queue, 'pending',
            case when v_blocked then -2147483648 else v_f.priority end,
            case when v_blocked then 'infinity'::timestamptz else v_now end, v_f.payload, 0,
            v_f.max_attempts, v_f.dedup_key, v_f.enqueued_at, v_f.last_error, v_f.group_key
        )
        on conflict (queue, dedup_key)
        where dedup_key is not null and status in ('pending', 'running')
        do nothing
        returning r.id into v_id;
        if v_id is null then
            -- Its dedup_key is taken: it stays failed (and a group made for it goes).
            if not v_blocked then
                delete from pgclaim.groups as g
                where g.queue = v_f.queue and g.group_key = v_f.group_key;
            end if;
            continue;
        end if;
        if v_blocked then
            insert into pgclaim.waiting (id, queue, group_key, priority, run_at)
            values (v_id, v_f.queue, v_f.group_key, v_f.priority, v_now);
        end if;
        delete from pgclaim.finished as f where f.id = v_id;
        v_count := v_count + 1;
    end loop;

    if v_count > 0 then
        perform pgclaim._notify(retry_failed.queue);
    end if;
    return v_count;
end;
$fn$;

comment on function pgclaim.retry_failed(text, bigint[]) is
'Puts failed records of a queue (all, or those among ids) back to pending with their '
'attempts reset (one per dedup_key still free); returns how many. Raises PC001.';
