-- pgclaim.enqueue_batch(queue, payloads, priority, run_at)
-- Adds one record per payload in one statement.
-- Returns: the new ids in input order. Notifies pgclaim_<queue> once when due now
-- (unless the queue has a backlog, see _wake).
-- Raises: PC001 unknown queue; 22004 null array, null element (named by its
-- 1-based position) or null priority. Tables: queues (key share), records (insert).
create or replace function pgclaim.enqueue_batch(
    queue text,
    payloads jsonb[],
    priority integer default 0,
    run_at timestamptz default null
)
returns setof bigint
language plpgsql
volatile
security definer
set search_path = ''
as $fn$
declare
    v_q pgclaim.queues;
    v_now timestamptz := pgclaim._now();
    v_run_at timestamptz := coalesce(enqueue_batch.run_at, v_now);
    v_null bigint;
begin
    v_q := pgclaim._queue(enqueue_batch.queue, true);
    if enqueue_batch.payloads is null then
        raise exception using errcode = '22004', message = 'pgclaim: payloads must not be null';
    end if;
    if enqueue_batch.priority is null then
        raise exception using errcode = '22004', message = 'pgclaim: priority must not be null';
    end if;
    if pg_catalog.array_position(enqueue_batch.payloads, null) is not null then
        v_null := pg_catalog.array_position(enqueue_batch.payloads, null);
        raise exception using
            errcode = '22004',
            message = pg_catalog.format(
                'pgclaim: payloads[%s] must not be null (queue %L)', v_null, enqueue_batch.queue);
    end if;
    if pg_catalog.cardinality(enqueue_batch.payloads) = 0 then
        return;
    end if;

    -- Rows are inserted in input order, so identity values ascend with it.
    return query
    with ins as (
        insert into pgclaim.records as r (
            queue, priority, run_at, payload, max_attempts, enqueued_at
        )
        select enqueue_batch.queue, enqueue_batch.priority, v_run_at, u.p,
            v_q.max_attempts, v_now
        from pg_catalog.unnest(enqueue_batch.payloads) with ordinality as u (p, n)
        order by u.n
        returning r.id
    )
    select ins.id from ins order by ins.id;

    if v_run_at <= v_now then
        perform pgclaim._wake(enqueue_batch.queue, v_now);
    end if;
end;
$fn$;

comment on function pgclaim.enqueue_batch(text, jsonb[], integer, timestamptz) is
'Adds one record per payload in one statement and returns the ids in input order. '
'Raises PC001 unknown queue, 22004 for a null array or element.';
