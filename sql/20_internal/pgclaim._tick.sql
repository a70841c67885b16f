-- pgclaim._tick(now): enqueues the due slot of every schedule whose next_slot has
-- come, the one path of tick() and of claim_batch. Each schedule row is locked
-- with skip locked: a schedule another tick holds is that tick's, and once it
-- commits its next_slot is past now, so a slot is enqueued once however many
-- ticks run at once. Missed slots: only the latest slot at or before now is
-- enqueued (once), and next_slot moves to the first slot after now. The record
-- is due at its slot and carries the dedup_key 'schedule:<name>:<slot in UTC>',
-- so that even a second enqueue of a slot would return the first record while
-- it is unfinished. A schedule whose queue no longer exists enqueues nothing;
-- its slots pass.
-- Returns: how many records it added.
-- Raises: nothing (the schedules were checked when made).
-- Tables: schedules (update), queues (read), and _enqueue_one's.
create or replace function pgclaim._tick(now timestamptz)
returns integer
language plpgsql
volatile
set search_path = pg_catalog, pg_temp
as $fn$
declare
    v_s pgclaim.schedules;
    v_q pgclaim.queues;
    v_secs double precision;
    v_slot timestamptz;
    v_next timestamptz;
    v_id bigint;
    v_created boolean;
    v_n integer := 0;
begin
    for v_s in
        select s.* from pgclaim.schedules as s
        where s.next_slot <= _tick.now
        order by s.next_slot
        for update skip locked
    loop
        if v_s.every is not null then
            -- Slots of every are next_slot + k * every, in seconds (not calendar days).
            v_secs := extract(epoch from v_s.every);
            v_slot := v_s.next_slot + pg_catalog.make_interval(secs => v_secs * pg_catalog.floor(
                extract(epoch from _tick.now - v_s.next_slot) / v_secs));
            v_next := v_slot + pg_catalog.make_interval(secs => v_secs);
        else
            v_slot := pgclaim._cron_slot(v_s.cron, v_s.timezone, _tick.now, false);
            v_next := pgclaim._cron_slot(v_s.cron, v_s.timezone, _tick.now, true);
        end if;
        v_id := null;
        select q.* into v_q from pgclaim.queues as q where q.queue = v_s.queue;
        if found then
            select e.id, e.created into v_id, v_created
            from pgclaim._enqueue_one(
                v_q, v_s.payload, v_s.priority, v_slot,
                'schedule:' || v_s.name || ':' || pg_catalog.to_char(
                    v_slot at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
                v_s.max_attempts, v_s.group_key, _tick.now
            ) as e;
            if v_created then
                v_n := v_n + 1;
                perform pgclaim._wake(v_s.queue, _tick.now);
            end if;
        end if;
        update pgclaim.schedules as s set
            last_slot = v_slot,
            last_id = coalesce(v_id, s.last_id),
            next_slot = v_next
        where s.name = v_s.name;
    end loop;
    return v_n;
end;
$fn$;

comment on function pgclaim._tick(timestamptz) is
'Internal: enqueues the latest due slot of each due schedule once (skip locked) and moves '
'its next slot past now; returns how many records it added.';
