-- pgclaim.next_eligible(queue): when a claim of the queue can next hand out a
-- record, for a worker that was just told "nothing now": the due time of the
-- earliest pending record that is not waiting behind its group's head, but not
-- before the token bucket holds a whole token (rate). It changes nothing.
-- Returns: that time (now or earlier: claim again at once), or null when no
-- record is pending (wait for a notification), the queue is paused, or it is at
-- its max_running (a completion frees a place: poll).
-- Raises: PC001 unknown queue; 42501 no claim privilege on a restricted queue.
-- Tables: queues, queue_grants, queue_flow, records (read).
create or replace function pgclaim.next_eligible(queue text)
returns timestamptz
language plpgsql
stable
security definer
set search_path = pg_catalog, pg_temp
as $fn$
declare
    v_q pgclaim.queues;
    v_now timestamptz := pgclaim._now();
    v_due timestamptz;
    v_f pgclaim.queue_flow;
    v_tokens double precision;
begin
    v_q := pgclaim._queue(next_eligible.queue);
    perform pgclaim._require(v_q, 'claim', pgclaim._caller());
    if v_q.paused then
        return null;
    end if;
    -- The claim's index, whole for the queue: workers ask only when idle.
    select pg_catalog.min(r.run_at) into v_due from pgclaim.records as r
    where r.queue = next_eligible.queue and r.status = 'pending' and r.run_at < 'infinity';
    if v_due is null then
        return null;
    end if;
    if v_q.max_running is not null and (
        select pg_catalog.count(*) from pgclaim.records as r
        where r.queue = next_eligible.queue and r.status = 'running'
    ) >= v_q.max_running then
        return null;
    end if;
    if v_q.rate is not null then
        select f.* into v_f from pgclaim.queue_flow as f where f.queue = next_eligible.queue;
        if found then
            v_tokens := least(v_q.burst::double precision, v_f.tokens + v_q.rate * greatest(
                extract(epoch from v_now - v_f.refilled_at)::double precision, 0));
            if v_tokens < 1 then
                v_due := greatest(v_due, v_now + pg_catalog.make_interval(
                    secs => (1 - v_tokens) / v_q.rate));
            end if;
        end if;
    end if;
    return v_due;
end;
$fn$;

comment on function pgclaim.next_eligible(text) is
'When a claim of the queue can next hand out a record (due time and token bucket), or null '
'when nothing is pending, the queue is paused or at max_running. Raises PC001, 42501.';
