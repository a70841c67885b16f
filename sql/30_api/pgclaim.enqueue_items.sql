-- pgclaim.enqueue_items(queue, items): adds one record per item of a jsonb array,
-- in one call and one transaction, each item with its own options:
--   {"payload": {...}, "priority": 0, "run_at": "2030-01-01T00:00:00Z",
--    "dedup_key": "k", "group_key": "g", "max_attempts": 3}
-- payload is required; the others may be left out (or null) and default as in
-- enqueue. Items without dedup_key and group_key go in with one statement (ids
-- ascending in input order); the others one by one through _enqueue_one, in
-- input order, with dedup per item (an item whose dedup_key an earlier item of
-- the call took gets that item's id back) and FIFO groups as enqueue has them.
-- Notifies pgclaim_<queue> once when a new record is due now (_wake).
-- Returns: (id, created) per item, in input order; created false when the id is
-- an existing record's (dedup).
-- Raises: PC001 unknown queue; 42501 no enqueue privilege on a restricted queue;
-- 22004 null items or an item's payload (named by its 1-based position); 22023
-- items not an array of objects, more items than the queue's max_batch, an item
-- with an unknown key or a value of the wrong type, and each check of enqueue
-- (named by position).
-- Tables: queues (key share), queue_grants (read), records (insert), and
-- _enqueue_one's.
create or replace function pgclaim.enqueue_items(queue text, items jsonb)
returns table (id bigint, created boolean)
language plpgsql
volatile
security definer
set search_path = pg_catalog, pg_temp
as $fn$
declare
    v_q pgclaim.queues;
    v_now timestamptz := pgclaim._now();
    v_items pgclaim.item [] := '{}'::pgclaim.item [];
    v_ids bigint [];
    v_created boolean [];
    v_plain bigint [];
    v_n integer;
    v_k integer := 0;
    v_one_id bigint;
    v_one_created boolean;
    v_due boolean := false;
begin
    v_q := pgclaim._queue(enqueue_items.queue, true);
    if enqueue_items.items is null then
        raise exception using errcode = '22004', message = 'pgclaim: items must not be null';
    end if;
    if pg_catalog.jsonb_typeof(enqueue_items.items) <> 'array' then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format('pgclaim: items must be a JSON array, got %s',
                pg_catalog.jsonb_typeof(enqueue_items.items));
    end if;
    v_n := pg_catalog.jsonb_array_length(enqueue_items.items);
    perform pgclaim._check_int('the number of items', v_n, 0, v_q.max_batch);
    perform pgclaim._require(v_q, 'enqueue', pgclaim._caller());

    -- Every item is checked before anything is added.
    for i in 1..v_n loop
        v_items := v_items || pgclaim._check_item(v_q, enqueue_items.items -> (i - 1), i, v_now);
    end loop;

    -- Plain items: one statement; ids ascend in input order (as in enqueue_batch).
    with ins as (
        insert into pgclaim.records as r (
            queue, priority, run_at, payload, max_attempts, enqueued_at
        )
        select enqueue_items.queue, u.priority, u.run_at, u.payload,
            coalesce(u.max_attempts, v_q.max_attempts), v_now
        from pg_catalog.unnest(v_items) with ordinality as u
        where u.dedup_key is null and u.group_key is null
        order by u.ordinality
        returning r.id
    )

    select pg_catalog.array_agg(ins.id order by ins.id) into v_plain from ins;

    v_ids := pg_catalog.array_fill(null::bigint, array[v_n]);
    v_created := pg_catalog.array_fill(true, array[v_n]);
    for i in 1..v_n loop
        if v_items[i].dedup_key is null and v_items[i].group_key is null then
            v_k := v_k + 1;
            v_ids[i] := v_plain[v_k];
        else
            select e.id, e.created into v_one_id, v_one_created
            from pgclaim._enqueue_one(
                v_q, v_items[i].payload, v_items[i].priority, v_items[i].run_at,
                v_items[i].dedup_key, v_items[i].max_attempts, v_items[i].group_key, v_now
            ) as e;
            v_ids[i] := v_one_id;
            v_created[i] := v_one_created;
        end if;
        v_due := v_due or (v_created[i] and v_items[i].run_at <= v_now);
    end loop;

    return query
    select u.id, u.created
    from rows from (pg_catalog.unnest(v_ids), pg_catalog.unnest(v_created))
        with ordinality as u (id, created, n)
    order by u.n;
    if v_due then
        perform pgclaim._wake(enqueue_items.queue, v_now);
    end if;
end;
$fn$;

comment on function pgclaim.enqueue_items(text, jsonb) is
'Adds one record per item of a JSON array, each with its own payload, priority, run_at, '
'dedup_key, group_key and max_attempts; returns (id, created) per item in input order. '
'Raises PC001, 42501, 22004, 22023.';
