-- pgclaim._wake(queue, as_of): notifies channel pgclaim_<queue> after an enqueue,
-- unless the head of the queue (the record the next claim takes) has already
-- waited 100 ms: then the workers are busy draining a backlog and will reach the
-- new records without a wake-up. Skipping those notifications matters because
-- PostgreSQL serialises the commits of notifying transactions.
-- Returns: whether it notified. Raises: nothing. Tables: records (read).
create or replace function pgclaim._wake(queue text, as_of timestamptz)
returns boolean
language plpgsql
volatile
set search_path = pg_catalog, pg_temp
as $fn$
declare
    v_head timestamptz;
begin
    select r.run_at into v_head from pgclaim.records as r
    where r.queue = _wake.queue and r.status = 'pending' and r.run_at <= _wake.as_of
    order by r.priority desc, r.run_at, r.id
    limit 1;
    if v_head < _wake.as_of - '100 milliseconds'::interval then
        return false;
    end if;
    perform pgclaim._notify(_wake.queue);
    return true;
end;
$fn$;

comment on function pgclaim._wake(text, timestamptz) is
'Internal: notifies pgclaim_<queue> unless the queue''s head has waited 100 ms (a backlog).';
