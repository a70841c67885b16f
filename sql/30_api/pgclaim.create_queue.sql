-- pgclaim.create_queue(queue, lease, max_attempts, backoff_base, backoff_max,
--     retention, max_payload_bytes, max_lease, min_priority, max_priority, max_batch,
--     max_running, rate, burst, fair, dedup_window)
-- Creates a queue; idempotent: the settings of an existing queue are left alone.
-- Flow control (null: none): max_running caps its running records, rate and
-- burst size a token bucket for its claims (burst defaults to the rate, at least
-- 1), fair makes FIFO groups take turns, dedup_window keeps dedup_keys taken that
-- long after their record finished (see docs/sql.md).
-- The defaults below are the one place pgclaim's queue defaults are written.
-- Returns: nothing. Raises: 22004/22023 for a bad name or setting (_check_settings).
-- Tables: queues, queue_flow (insert).
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
    max_batch integer default 10000,
    max_running integer default null,
    rate double precision default null,
    burst integer default null,
    fair boolean default false,
    dedup_window interval default null
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
        coalesce(create_queue.fair, false), create_queue.max_running, create_queue.rate,
        coalesce(create_queue.burst, pgclaim._default_burst(create_queue.rate)),
        create_queue.dedup_window
    );
    perform pgclaim._check_settings(v_q);
    insert into pgclaim.queues as q select v_q.*
    on conflict on constraint queues_pkey do nothing;
    if found then
        perform pgclaim._flow_setup(v_q, false);
    end if;
end;
$fn$;

comment on function pgclaim.create_queue(
    text, interval, integer, interval, interval, interval, integer, interval, integer, integer,
    integer, integer, double precision, integer, boolean, interval
) is
'Creates a queue with its lease, max_attempts, backoff_base, backoff_max, retention, '
'limits (max_payload_bytes, max_lease, min_priority, max_priority, max_batch) and flow '
'control (max_running, rate, burst, fair, dedup_window); idempotent (an existing queue '
'keeps its settings). Raises 22004/22023 on bad input.';
