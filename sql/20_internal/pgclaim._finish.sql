-- pgclaim._finish(ids, to_status, now, errors, from_status, worker_id, token, me,
--     admin): the one statement that finishes records. The records among ids that
-- are in one of from_status (and, when worker_id is given, held by worker_id
-- under token when given, claimed by the role me unless admin) leave
-- pgclaim.records for pgclaim.finished with their row, to_status, finished_at =
-- now and their error (errors, one per id, when given; an id given twice finishes
-- once, with the first of its errors). Completions are counted in queue_totals
-- (the slot of this transaction, _slot), with the metrics' counters (completions, dead
-- letters, cancellations) in the same row. Records of FIFO groups leave their groups
-- (_leave_groups, after this statement: a head hands its group on). complete
-- calls it with the holder's checks; _end_attempt (dead letters) and cancel with
-- ids they checked or locked.
-- Returns: (id, queue) of each record it finished. Raises: nothing.
-- Tables: records (delete), finished (insert), queue_totals, dedup_keys (upsert),
-- queues (read); groups,
-- waiting, records, finished (through _leave_groups).
create or replace function pgclaim._finish(
    ids bigint[],
    to_status pgclaim.status,
    now timestamptz,
    errors text[] default null,
    from_status text[] default '{running}',
    worker_id text default null,
    token bigint default null,
    me oid default null,
    admin boolean default true
)
returns table (id bigint, queue text)
language plpgsql
volatile
set search_path = pg_catalog, pg_temp
as $fn$
declare
    v_ids bigint [];
    v_queues text [];
    v_grouped bigint [];
    -- this transaction's own counter row: no report waits for another's (_slot)
    v_slot smallint := pgclaim._slot();
begin
    -- PL/pgSQL keeps the statement's plan between calls (an SQL function would plan
    -- it at every call): this is on the path of every completion.
    with
    done as (
        delete from pgclaim.records as r
        -- status compared as text: look the ids up by primary key, in id order,
        -- never read the partial index of running records whole
        where r.id = any(_finish.ids)
          and r.status::text = any(_finish.from_status)
          and (_finish.worker_id is null or (
              r.worker_id = _finish.worker_id
              and (_finish.token is null or r.lease_token = _finish.token)
              and (_finish.admin or coalesce(r.holder_role, _finish.me) = _finish.me)
          ))
        returning
            r.id, r.queue, r.priority, r.run_at, r.payload, r.attempt, r.max_attempts,
            r.dedup_key, r.worker_id, r.lease_token, r.lease_for, r.enqueued_at,
            r.last_error, r.holder_role, r.group_key, r.first_claimed_at, r.claimed_at,
            r.status
    ),

    -- One error per id (the first given): with an id twice in ids, a join to the
    -- arrays themselves would insert the record twice.
    errs as (
        select distinct on (e.id) e.id, e.error
        from rows from (
            pg_catalog.unnest(_finish.ids), pg_catalog.unnest(_finish.errors)
        ) with ordinality as e (id, error, n)
        where _finish.errors is not null
        order by e.id, e.n
    ),

    moved as (
        insert into pgclaim.finished as f (
            id, queue, status, priority, run_at, payload, attempt, max_attempts, dedup_key,
            worker_id, lease_until, lease_token, lease_for, enqueued_at, finished_at,
            last_error, holder_role, group_key, first_claimed_at, claimed_at
        )
        select
            d.id, d.queue, _finish.to_status, d.priority, d.run_at, d.payload, d.attempt,
            d.max_attempts, d.dedup_key, d.worker_id, null, d.lease_token, d.lease_for,
            d.enqueued_at, _finish.now, coalesce(e.error, d.last_error), d.holder_role,
            d.group_key, d.first_claimed_at, d.claimed_at
        from done as d
        left join errs as e on d.id = e.id
        returning f.id, f.queue, f.group_key
    ),

    -- The keys of queues with a dedup_window stay taken (enqueue reads them).
    keys as (
        insert into pgclaim.dedup_keys as k (queue, dedup_key, id, finished_at)
        select d.queue, d.dedup_key, d.id, _finish.now
        from done as d
        inner join pgclaim.queues as q on d.queue = q.queue
        where d.dedup_key is not null and q.dedup_window is not null
        on conflict on constraint dedup_keys_pkey do update
        set id = excluded.id, finished_at = excluded.finished_at
    ),

    -- Runs whether or not the select below reads it (a data-modifying WITH always does).
    -- Every record deleted is moved: done has the rows of moved, and their status
    -- before (a cancelled running record ends an attempt: cancelled_running).
    counted as (
        insert into pgclaim.queue_totals as t (
            queue, slot, completed, completions, dead_letters, cancellations, cancelled_running
        )
        select
            d.queue,
            v_slot,
            pg_catalog.count(*) filter (where _finish.to_status = 'completed'),
            pg_catalog.count(*) filter (where _finish.to_status = 'completed'),
            pg_catalog.count(*) filter (where _finish.to_status = 'failed'),
            pg_catalog.count(*) filter (where _finish.to_status = 'cancelled'),
            pg_catalog.count(*) filter (
                where _finish.to_status = 'cancelled' and d.status = 'running'
            )
        from done as d
        group by d.queue
        on conflict on constraint queue_totals_pkey do update
        set
            completed = t.completed + excluded.completed,
            completions = t.completions + excluded.completions,
            dead_letters = t.dead_letters + excluded.dead_letters,
            cancellations = t.cancellations + excluded.cancellations,
            cancelled_running = t.cancelled_running + excluded.cancelled_running
    )

    select
        pg_catalog.array_agg(m.id),
        pg_catalog.array_agg(m.queue),
        pg_catalog.array_agg(m.id) filter (where m.group_key is not null)
    into v_ids, v_queues, v_grouped
    from moved as m;
    return query
    select u.id, u.queue
    from rows from (pg_catalog.unnest(v_ids), pg_catalog.unnest(v_queues)) as u (id, queue);
    if v_grouped is not null then
        perform pgclaim._leave_groups(v_grouped, _finish.now);
    end if;
end;
$fn$;

comment on function pgclaim._finish(
    bigint[], pgclaim.status, timestamptz, text[], text[], text, bigint, oid, boolean
) is
'Internal: moves the records among ids (in from_status, held as given) to '
'pgclaim.finished with to_status; counts them in queue_totals. Returns (id, queue) of each.';
