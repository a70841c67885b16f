-- pgclaim.resume_queue(queue): lets claim_batch hand out records again and
-- wakes the listening workers.
-- Returns: nothing. Raises: PC001 unknown queue. Tables: queues (update).
create or replace function pgclaim.resume_queue(queue text)
returns void
language plpgsql
volatile
security definer
set search_path = pg_catalog, pg_temp
as $fn$
begin
    perform pgclaim._queue(resume_queue.queue);
    update pgclaim.queues as q set paused = false where q.queue = resume_queue.queue;
    perform pgclaim._notify(resume_queue.queue);
end;
$fn$;

comment on function pgclaim.resume_queue(text) is
'Resumes a paused queue and notifies its workers. Raises PC001.';
