-- pgclaim._check_item(q, item, n, now): one item of enqueue_items, checked as
-- enqueue checks its arguments and named by its 1-based position n: a JSON
-- object with a non-null payload and, optionally, priority and max_attempts
-- (integers), run_at (a time, default now), dedup_key and group_key (strings).
-- Returns: the item as pgclaim.item. Raises: 22004 item or payload null; 22023
-- not an object, an unknown key, a value of the wrong type, and what
-- _check_enqueue and _check_text refuse.
-- Tables: none (enqueue_items checks the enqueue privilege once).
create or replace function pgclaim._check_item(
    q pgclaim.queues, item jsonb, n integer, now timestamptz
)
returns pgclaim.item
language plpgsql
volatile
set search_path = pg_catalog, pg_temp
as $fn$
declare
    v_it pgclaim.item;
    v_key text;
    v_where text := pg_catalog.format('items[%s]', _check_item.n);
begin
    if pg_catalog.jsonb_typeof(_check_item.item) is distinct from 'object' then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format('pgclaim: %s must be a JSON object, got %s', v_where,
                coalesce(pg_catalog.jsonb_typeof(_check_item.item), 'nothing'));
    end if;
    select k into v_key from pg_catalog.jsonb_object_keys(_check_item.item) as k
    where k not in ('payload', 'priority', 'run_at', 'dedup_key', 'group_key', 'max_attempts')
    limit 1;
    if found then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format('pgclaim: %s has an unknown key %s', v_where,
                pgclaim._show(v_key));
    end if;
    if coalesce(pg_catalog.jsonb_typeof(_check_item.item -> 'payload'), 'null') = 'null' then
        raise exception using
            errcode = '22004',
            message = pg_catalog.format('pgclaim: %s.payload must not be null (queue %L)',
                v_where, q.queue);
    end if;
    v_it.payload := _check_item.item -> 'payload';
    begin
        v_it.priority := coalesce((_check_item.item ->> 'priority')::integer, 0);
        v_it.max_attempts := (_check_item.item ->> 'max_attempts')::integer;
        v_it.run_at := coalesce((_check_item.item ->> 'run_at')::timestamptz, _check_item.now);
    exception when data_exception then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format(
                'pgclaim: %s has a priority, max_attempts or run_at of the wrong type: %s',
                v_where, pgclaim._show(_check_item.item::text));
    end;
    if pg_catalog.jsonb_typeof(_check_item.item -> 'dedup_key') not in ('string', 'null')
       or pg_catalog.jsonb_typeof(_check_item.item -> 'group_key') not in ('string', 'null') then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format('pgclaim: %s: dedup_key and group_key must be strings',
                v_where);
    end if;
    v_it.dedup_key := _check_item.item ->> 'dedup_key';
    v_it.group_key := _check_item.item ->> 'group_key';
    perform pgclaim._check_enqueue(
        q, v_it.priority, v_it.run_at, v_it.max_attempts,
        pg_catalog.pg_column_size(v_it.payload), _check_item.n);
    if v_it.dedup_key is not null then
        perform pgclaim._check_text(v_where || '.dedup_key', v_it.dedup_key, 512);
    end if;
    if v_it.group_key is not null then
        perform pgclaim._check_text(v_where || '.group_key', v_it.group_key, 512);
    end if;
    return v_it;
end;
$fn$;

comment on function pgclaim._check_item(pgclaim.queues, jsonb, integer, timestamptz) is
'Internal: one item of enqueue_items, checked (22004/22023 naming its position).';
