-- pgclaim._queue(queue, key_share): the settings row of an existing queue.
-- Returns: pgclaim.queues; with key_share the row is locked FOR KEY SHARE, so
-- drop_queue waits for the caller's transaction (enqueue uses it).
-- Raises: 22004/22023 for a bad name, PC001 when the queue does not exist.
-- Tables: queues (read).
create or replace function pgclaim._queue(queue text, key_share boolean default false)
returns pgclaim.queues
language plpgsql
volatile
set search_path = pg_catalog, pg_temp
as $fn$
declare
    v_q pgclaim.queues;
begin
    perform pgclaim._check_queue_name(_queue.queue);
    if key_share then
        select q.* into v_q from pgclaim.queues as q
        where q.queue = _queue.queue for key share;
    else
        select q.* into v_q from pgclaim.queues as q
        where q.queue = _queue.queue;
    end if;
    if not found then
        raise exception using
            errcode = 'PC001',
            message = pg_catalog.format('pgclaim: unknown queue %L', _queue.queue),
            hint = 'Create it with pgclaim.create_queue(queue => ...).';
    end if;
    return v_q;
end;
$fn$;

comment on function pgclaim._queue(text, boolean) is
'Internal: the settings of an existing queue; raises PC001 when unknown.';
