-- pgclaim.create_queue(queue, lease, max_attempts, backoff_base, backoff_max, retention)
-- Creates a queue; idempotent: the settings of an existing queue are left alone.
-- Returns: nothing. Raises: 22004/22023 for a bad name or setting.
-- Tables: queues (insert).
create or replace function pgclaim.create_queue(
    queue text,
    lease interval default '5 minutes',
    max_attempts integer default 5,
    backoff_base interval default '10 seconds',
    backoff_max interval default '1 hour',
    retention interval default '7 days'
)
returns void
language plpgsql
volatile
security definer
set search_path = ''
as $fn$
begin
    perform pgclaim._check_queue_name(create_queue.queue);
    perform pgclaim._check_interval('lease', create_queue.lease, false);
    perform pgclaim._check_interval('backoff_base', create_queue.backoff_base, false);
    perform pgclaim._check_interval('backoff_max', create_queue.backoff_max, false);
    perform pgclaim._check_interval('retention', create_queue.retention, false);
    if create_queue.max_attempts is null or create_queue.max_attempts < 1 then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format(
                'pgclaim: max_attempts must be at least 1, got %s',
                coalesce(create_queue.max_attempts::text, 'null'));
    end if;
    insert into pgclaim.queues as q (
        queue, lease, max_attempts, backoff_base, backoff_max, retention
    ) values (
        create_queue.queue, create_queue.lease, create_queue.max_attempts,
        create_queue.backoff_base, create_queue.backoff_max, create_queue.retention
    ) on conflict on constraint queues_pkey do nothing;
end;
$fn$;

comment on function pgclaim.create_queue(text, interval, integer, interval, interval, interval) is
'Creates a queue with its lease, max_attempts, backoff_base, backoff_max and retention; '
'idempotent (an existing queue keeps its settings). Raises 22004/22023 on bad input.';
