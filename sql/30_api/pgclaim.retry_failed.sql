-- pgclaim.retry_failed(queue, ids, error_like, finished_after, finished_before,
-- min_attempt): failed records (dead letters) of the queue go back from
-- pgclaim.finished to pending, due now, with their attempts reset and their ids
-- kept. Which ones: all of the queue's, narrowed by every filter given: among
-- ids, last_error LIKE error_like, finished at or after finished_after and before
-- finished_before, failed on attempt min_attempt or later. A dedup_key stays
-- unique among unfinished records: a failed record whose key an unfinished
-- record holds is skipped, and of failed records sharing a key only the newest
-- (among those the filters pick) is retried. A record of a FIFO group goes back
-- as its group's head when the group has no unfinished record, and otherwise
-- waits blocked behind the group's records like a record enqueued now (its run_at
-- is now).
-- Returns: how many records of the queue went back.
-- Raises: PC001 unknown queue; 22004 a null element of ids; 22023 more ids than
-- config.max_ids, error_like empty, over 1000 bytes or not printable,
-- min_attempt outside 1..1000. Waits at most 5 s for row locks (55P03).
-- Tables: finished (delete), records (insert), groups (insert, update, delete),
-- waiting (insert).
create or replace function pgclaim.retry_failed(
    queue text,
    ids bigint[] default null,
    error_like text default null,
    finished_after timestamptz default null,
    finished_before timestamptz default null,
    min_attempt integer default null
)
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
    v_picked bigint[];
    v_f pgclaim.finished;
    v_blocked boolean;
    v_id bigint;
begin
    perform pgclaim._queue(retry_failed.queue);
    if retry_failed.ids is not null then
        perform pgclaim._check_ids(retry_failed.ids, null);
    end if;
    perform pgclaim._check_dead_filter(retry_failed.error_like, retry_failed.min_attempt);
    -- The records the filters pick, locked; of those sharing a dedup_key only the
    -- newest goes back.
    with picked as materialized (
        select f.id, f.dedup_key from pgclaim.finished as f
        where f.queue = retry_failed.queue
          and f.status = 'failed'
          and (retry_failed.ids is null or f.id = any(retry_failed.ids))
          and (retry_failed.error_like is null or f.last_error like retry_failed.error_like)
          and (retry_failed.finished_after is null
               or f.finished_at >= retry_failed.finished_after)
          and (retry_failed.finished_before is null
               or f.finished_at < retry_failed.finished_before)
          and (retry_failed.min_attempt is null or f.attempt >= retry_failed.min_attempt)
        order by f.id
        for update of f
    )

    select coalesce(pg_catalog.array_agg(p.id order by p.id), '{}') into v_picked
    from picked as p
    where p.dedup_key is null or not exists (
        select from picked as n
        where n.dedup_key = p.dedup_key and n.id > p.id
    );
    -- Records of no group: back into pgclaim.records first, with their ids; a record
    -- whose dedup_key an unfinished record took in the meantime conflicts and stays
    -- where it is. Then only the records that went back leave pgclaim.finished.
    with
    back as (
        insert into pgclaim.records as r (
            id, queue, status, priority, run_at, payload, attempt, max_attempts, dedup_key,
            enqueued_at, last_error, first_claimed_at, claimed_at
        ) overriding system value
        select
            f.id, f.queue, 'pending', f.priority, v_now, f.payload, 0, f.max_attempts,
            f.dedup_key, f.enqueued_at, f.last_error, f.first_claimed_at, f.claimed_at
        from pgclaim.finished as f
        where f.id = any(v_picked) and f.group_key is null
        order by f.id
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
        where f.id = any(v_picked) and f.group_key is not null
        order by f.priority desc, f.id
    loop
        v_blocked := pgclaim._group_join(v_f.queue, v_f.group_key);
        insert into pgclaim.records as r (
            id, queue, status, priority, run_at, payload, attempt, max_attempts,
            dedup_key, enqueued_at, last_error, group_key, first_claimed_at, claimed_at
        ) overriding system value
        values (
            v_f.id, v_f.queue, 'pending',
            case when v_blocked then -2147483648 else v_f.priority end,
            case when v_blocked then 'infinity'::timestamptz else v_now end, v_f.payload, 0,
            v_f.max_attempts, v_f.dedup_key, v_f.enqueued_at, v_f.last_error, v_f.group_key,
            v_f.first_claimed_at, v_f.claimed_at
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

comment on function pgclaim.retry_failed(
    text, bigint[], text, timestamptz, timestamptz, integer
) is
'Puts failed records of a queue back to pending with their attempts reset: all, or those '
'the filters pick (ids, error_like, finished range, min_attempt), one per dedup_key still '
'free; returns how many. Raises PC001.';
