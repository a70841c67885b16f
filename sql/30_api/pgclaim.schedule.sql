-- pgclaim.schedule(name, queue, payload, cron, every, priority, max_attempts,
--     group_key, timezone)
-- Creates or replaces the periodic schedule name: at every slot of cron (five
-- fields, read in timezone; see _cron_slot) or every interval, one record with
-- payload, priority, max_attempts and group_key goes into queue (tick). Give
-- exactly one of cron and every. The first slot of every is now + every. A
-- replaced schedule whose cron, every and timezone are unchanged keeps its next
-- slot (so that a deployment may call this at each start); otherwise its slots
-- start again from now. Only admins schedule: the records are enqueued in
-- pgclaim's name whatever the queue's grants (docs/security.md).
-- Returns: the schedule's next slot.
-- Raises: PC001 unknown queue; 22004 null name, payload or priority; 22023 a bad
-- name, neither or both of cron and every, a malformed cron expression (naming
-- its field) or one that never matches, every under 1 second or with months,
-- an unknown timezone, priority or max_attempts outside the queue's limits, a
-- payload over its max_payload_bytes, group_key empty or over 512 bytes.
-- Tables: queues, queue_grants (read), schedules (insert, update).
create or replace function pgclaim.schedule(
    name text,
    queue text,
    payload jsonb default '{}',
    cron text default null,
    every interval default null,
    priority integer default 0,
    max_attempts integer default null,
    group_key text default null,
    timezone text default 'UTC'
)
returns timestamptz
language plpgsql
volatile
security definer
set search_path = pg_catalog, pg_temp
as $fn$
declare
    v_q pgclaim.queues;
    v_now timestamptz := pgclaim._now();
    v_next timestamptz;
begin
    perform pgclaim._check_text('name', schedule.name);
    v_q := pgclaim._queue(schedule.queue);
    if schedule.payload is null then
        raise exception using
            errcode = '22004',
            message = pg_catalog.format(
                'pgclaim: payload of schedule %L must not be null', schedule.name);
    end if;
    perform pgclaim._require(v_q, 'enqueue', pgclaim._caller());
    perform pgclaim._check_enqueue(
        v_q, schedule.priority, v_now, schedule.max_attempts,
        pg_catalog.pg_column_size(schedule.payload));
    if schedule.group_key is not null then
        perform pgclaim._check_text('group_key', schedule.group_key, 512);
    end if;
    perform pgclaim._check_text('timezone', schedule.timezone);
    begin
        perform v_now at time zone schedule.timezone;
    exception when invalid_parameter_value then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format(
                'pgclaim: unknown timezone %s', pgclaim._show(schedule.timezone)),
            hint = 'A name of pg_timezone_names, such as UTC or Europe/Paris.';
    end;
    if (schedule.cron is null) = (schedule.every is null) then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format(
                'pgclaim: schedule %L needs exactly one of cron and every', schedule.name);
    end if;
    if schedule.every is not null then
        perform pgclaim._check_interval('every', schedule.every);
        if extract(year from schedule.every) <> 0 or extract(month from schedule.every) <> 0
           or schedule.every < interval '1 second' then
            raise exception using
                errcode = '22023',
                message = pg_catalog.format(
                    'pgclaim: every must be at least 1 second and have no months, got %s',
                    pgclaim._show(schedule.every::text)),
                hint = 'For monthly slots, use cron.';
        end if;
        v_next := v_now + pg_catalog.make_interval(secs => extract(epoch from schedule.every));
    else
        v_next := pgclaim._cron_slot(schedule.cron, schedule.timezone, v_now, true);
    end if;

    insert into pgclaim.schedules as s (
        name, queue, payload, priority, max_attempts, group_key, cron, every, timezone,
        next_slot, created_at
    ) values (
        schedule.name, schedule.queue, schedule.payload, schedule.priority,
        schedule.max_attempts, schedule.group_key, schedule.cron, schedule.every,
        schedule.timezone, v_next, v_now
    )
    on conflict on constraint schedules_pkey do update set
        queue = excluded.queue,
        payload = excluded.payload,
        priority = excluded.priority,
        max_attempts = excluded.max_attempts,
        group_key = excluded.group_key,
        cron = excluded.cron,
        every = excluded.every,
        timezone = excluded.timezone,
        next_slot = case
            when s.cron is not distinct from excluded.cron
                and s.every is not distinct from excluded.every
                and s.timezone = excluded.timezone
            then s.next_slot
            else excluded.next_slot
        end
    returning s.next_slot into v_next;
    return v_next;
end;
$fn$;

comment on function pgclaim.schedule(
    text, text, jsonb, text, interval, integer, integer, text, text
) is
'Creates or replaces a periodic schedule: a record (payload, priority, max_attempts, '
'group_key) enqueued into queue at every slot of cron (in timezone) or every interval; '
'returns the next slot. Raises PC001, 22004, 22023.';
