-- pgclaim.purge(queue, older_than, max_records): deletes finished records
-- (completed, failed, cancelled) of the queue that finished more than
-- older_than ago (default: the queue's retention), at most max_records a call.
-- Returns: how many it deleted. Raises: PC001 unknown queue; 22023 older_than
-- negative or max_records < 1. Tables: records (delete).
create or replace function pgclaim.purge(
    queue text, older_than interval default null, max_records integer default 100000
)
returns integer
language plpgsql
volatile
security definer
set search_path = ''
as $fn$
declare
    v_q pgclaim.queues;
    v_cutoff timestamptz;
    v_count integer;
begin
    v_q := pgclaim._queue(purge.queue);
    if purge.older_than < '0'::interval then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format(
                'pgclaim: older_than must not be negative, got %L', purge.older_than::text);
    end if;
    if purge.max_records is null or purge.max_records < 1 then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format(
                'pgclaim: max_records must be at least 1, got %s',
                coalesce(purge.max_records::text, 'null'));
    end if;
    v_cutoff := pgclaim._now() - coalesce(purge.older_than, v_q.retention);
    -- The outer conditions repeat the inner ones: a row that a concurrent
    -- retry_failed made pending again is re-checked against them and kept.
    delete from pgclaim.records as r
    where r.id in (
        select f.id from pgclaim.records as f
        where f.queue = purge.queue
          and f.status in ('completed', 'failed', 'cancelled')
          and f.finished_at < v_cutoff
        limit purge.max_records
    )
      and r.status in ('completed', 'failed', 'cancelled')
      and r.finished_at < v_cutoff;
    get diagnostics v_count = row_count;
    return v_count;
end;
$fn$;

comment on function pgclaim.purge(text, interval, integer) is
'Deletes finished records of a queue older than older_than (default: its retention), '
'at most max_records; returns how many. Raises PC001, 22023.';
