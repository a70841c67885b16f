-- pgclaim.enqueue_batch(queue, payloads, priority, run_at)
-- Adds one record per payload in one statement.
-- Returns: the new ids in input order. Notifies pgclaim_<queue> once when due now
-- (unless the queue has a backlog, see _wake).
-- Raises: PC001 unknown queue; 42501 no enqueue privilege on a restricted queue;
-- 22004 null array, null element (named by its 1-based position) or null
-- priority; 22023 payloads of more than one dimension, more payloads than the
-- queue's max_batch, a payload over max_payload_bytes (named by position),
-- priority outside the queue's range, run_at not finite (_check_enqueue).
-- Tables: queues (key share), queue_grants (read), records (insert).
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
set search_path = pg_catalog, pg_temp
as $fn$
declare
    v_q pgclaim.queues;
    v_now timestamptz := pgclaim._now();
    v_run_at timestamptz := coalesce(enqueue_batch.run_at, v_now);
    v_at integer;
    v_bytes bigint;
begin
    v_q := pgclaim._queue(enqueue_batch.queue, true);
    if enqueue_batch.payloads is null then
        raise exception using errcode = '22004', message = 'pgclaim: payloads must not be null';
    end if;
    if pg_catalog.array_ndims(enqueue_batch.payloads) > 1 then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format('pgclaim: payloads must have one dimension, got %s',
                pg_catalog.array_ndims(enqueue_batch.payloads));
    end if;
    v_at := pg_catalog.array_position(enqueue_batch.payloads, null);
    if v_at is not null then
        raise exception using
            errcode = '22004',
            message = pg_catalog.format(
                'pgclaim: payloads[%s] must not be null (queue %L)', v_at, enqueue_batch.queue);
    end if;
    perform pgclaim._check_int(
        'the number of payloads', pg_catalog.cardinality(enqueue_batch.payloads), 0, v_q.max_batch);
    -- The largest payload is checked with the rest of the record (and named by its
    -- position when it is too large).
    select pg_catalog.max(pg_catalog.pg_column_size(u.p)) into v_bytes
    from pg_catalog.unnest(enqueue_batch.payloads) as u (p);
    if v_bytes > v_q.max_payload_bytes then
        select u.n, pg_catalog.pg_column_size(u.p) into v_at, v_bytes
        from pg_catalog.unnest(enqueue_batch.payloads) with ordinality as u (p, n)
        where pg_catalog.pg_column_size(u.p) > v_q.max_payload_bytes
        order by u.n
        limit 1;
    end if;
    perform pgclaim._require(v_q, 'enqueue', pgclaim._caller());
    perform pgclaim._check_enqueue(v_q, enqueue_batch.priority, v_run_at, null, v_bytes, v_at);
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
