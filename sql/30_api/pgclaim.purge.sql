-- pgclaim.purge(queue, older_than, max_records): deletes finished records
-- (completed, failed, cancelled) of the queue that finished more than
-- older_than ago (default: the queue's retention), at most max_records a call.
-- Returns: how many it deleted. Raises: PC001 unknown queue; 22023 older_than
-- negative or max_records < 1. Waits at most 5 s for row locks (55P03).
-- Tables: finished (delete), queue_totals (upsert), through _purge.
create or replace function pgclaim.purge(
    queue text, older_than interval default null, max_records integer default 100000
)
returns integer
language plpgsql
volatile
security definer
set search_path = pg_catalog, pg_temp
set lock_timeout = '5s'
as $fn$
declare
    v_q pgclaim.queues;
    v_cutoff timestamptz;
begin
    v_q := pgclaim._queue(purge.queue);
    perform pgclaim._check_interval('older_than', purge.older_than, true, true);
    perform pgclaim._check_int('max_records', purge.max_records, 1, 2147483647);
    v_cutoff := pgclaim._now() - coalesce(purge.older_than, v_q.retention);
    return pgclaim._purge(array(
        select f.id from pgclaim.finished as f
        where f.queue = purge.queue and f.finished_at < v_cutoff
        limit purge.max_records
    ));
end;
$fn$;

comment on function pgclaim.purge(text, interval, integer) is
'Deletes finished records of a queue older than older_than (default: its retention), '
'at most max_records; returns how many. Raises PC001, 22023.';
