-- pgclaim.pause_queue(queue): a paused queue hands out nothing; enqueue still works.
-- Returns: nothing. Raises: PC001 unknown queue. Tables: queues (update).
create or replace function pgclaim.pause_queue(queue text)
returns void
language plpgsql
volatile
security definer
set search_path = pg_catalog, pg_temp
as $fn$
begin
    perform pgclaim._queue(pause_queue.queue);
    update pgclaim.queues as q set paused = true where q.queue = pause_queue.queue;
end;
$fn$;

comment on function pgclaim.pause_queue(text) is
'Pauses a queue: claim_batch hands out nothing until resume_queue. Raises PC001.';
