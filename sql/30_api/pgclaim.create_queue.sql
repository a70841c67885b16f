-- pgclaim.create_queue(queue, lease, max_attempts, backoff_base, backoff_max,
--     retention, max_payload_bytes, max_lease, min_priority, max_priority, max_batch)
-- Creates a queue; idempotent: the settings of an existing queue are left alone.
-- The defaults below are the one place pgclaim's queue defaults are written.
-- Returns: nothing. Raises: 22004/22023 for a bad name or setting (_check_settings).
-- Tables: queues (insert).
create or replace function pgclaim.create_queue(
    queue text,
    lease interval default '5 minutes',
    max_attempts integer default 5,
    backoff_base interval default '10 seconds',
    backoff_max interval default '1 hour',
    retention interval default '7 days',
    max_payload_bytes integer default 1048576,
    max_lease interval default '12 hours',
    min_priority integer default -1000,
    max_priority integer default 1000,
    max_batch integer default 10000
)
returns void
language plpgsql
volatile
security definer
set search_path = pg_catalog, pg_temp
as $fn$
declare
    v_q pgclaim.queues;
begin
    perform pgclaim._check_queue_name(create_queue.queue);
    v_q := row(
        create_queue.queue, create_queue.lease, create_queue.max_attempts,
        create_queue.backoff_base, create_queue.backoff_max, create_queue.retention,
        false, pgclaim._now(), create_queue.max_payload_bytes, create_queue.max_lease,
        create_queue.min_priority, create_queue.max_priority, create_queue.max_batch, false,
        false
    );
    perform pgclaim._check_settings(v_q);
    insert into pgclaim.queues as q select v_q.*
    on conflict on constraint queues_pkey do nothing;
end;
$fn$;

comment on function pgclaim.create_queue(
    text, interval, integer, interval, interval, interval, integer, interval, integer, integer,
    integer
) is
'Creates a queue with its lease, max_attempts, backoff_base, backoff_max, retention and '
'limits (max_payload_bytes, max_lease, min_priority, max_priority, max_batch); idempotent '
'(an existing queue keeps its settings). Raises 22004/22023 on bad input.';
