-- pgclaim.alter_queue(queue, lease, max_attempts, backoff_base, backoff_max, retention)
-- Changes the settings given (null leaves a setting alone). Records already
-- enqueued keep their max_attempts; running records keep their lease.
-- Returns: nothing. Raises: PC001 unknown queue, 22004/22023 bad input.
-- Tables: queues (update).
create or replace function pgclaim.alter_queue(
    queue text,
    lease interval default null,
    max_attempts integer default null,
    backoff_base interval default null,
    backoff_max interval default null,
    retention interval default null
)
returns void
language plpgsql
volatile
security definer
set search_path = ''
as $fn$
begin
    perform pgclaim._queue(alter_queue.queue);
    perform pgclaim._check_interval('lease', alter_queue.lease);
    perform pgclaim._check_interval('backoff_base', alter_queue.backoff_base);
    perform pgclaim._check_interval('backoff_max', alter_queue.backoff_max);
    perform pgclaim._check_interval('retention', alter_queue.retention);
    if alter_queue.max_attempts < 1 then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format(
                'pgclaim: max_attempts must be at least 1, got %s', alter_queue.max_attempts);
    end if;
    update pgclaim.queues as q set
        lease = coalesce(alter_queue.lease, q.lease),
        max_attempts = coalesce(alter_queue.max_attempts, q.max_attempts),
        backoff_base = coalesce(alter_queue.backoff_base, q.backoff_base),
        backoff_max = coalesce(alter_queue.backoff_max, q.backoff_max),
        retention = coalesce(alter_queue.retention, q.retention)
    where q.queue = alter_queue.queue;
end;
$fn$;

comment on function pgclaim.alter_queue(text, interval, integer, interval, interval, interval) is
'Changes the given settings of a queue (null leaves one alone). '
'Raises PC001 for an unknown queue, 22023 for a bad setting.';
