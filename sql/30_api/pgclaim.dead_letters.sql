-- pgclaim.dead_letters(queue, max_records): the newest dead letters (records
-- finished as failed and kept for their queue's retention) of the queue, or of
-- every queue the caller may read when queue is null, with the error of their
-- last attempt: what an operator looks at before retry_failed. Payloads are not
-- shown. Each queue is read newest first through finished_dead_idx, at most
-- max_records rows of it, so the cost does not follow the finished records kept.
-- Returns: setof pgclaim.dead_letter (id, queue, attempt, max_attempts,
-- worker_id, enqueued_at, finished_at, last_error), newest first.
-- Raises: PC001 unknown queue; 42501 no read privilege on a restricted queue;
-- 22004/22023 max_records null or outside 1..1000.
-- Tables: queues, finished, queue_grants (read).
create or replace function pgclaim.dead_letters(
    queue text default null, max_records integer default 20
)
returns setof pgclaim.dead_letter
language plpgsql
stable
security definer
set search_path = pg_catalog, pg_temp
as $fn$
declare
    v_me oid := pgclaim._caller();
begin
    perform pgclaim._check_int('max_records', dead_letters.max_records, 1, 1000);
    if dead_letters.queue is not null then
        perform pgclaim._require(pgclaim._queue(dead_letters.queue), 'read', v_me);
    end if;
    return query
    select f.id, f.queue, f.attempt, f.max_attempts, f.worker_id, f.enqueued_at,
        f.finished_at, f.last_error
    from pgclaim.queues as q
    cross join lateral (
        select d.id, d.queue, d.attempt, d.max_attempts, d.worker_id, d.enqueued_at,
            d.finished_at, d.last_error
        from pgclaim.finished as d
        where d.queue = q.queue and d.status = 'failed'
        order by d.finished_at desc, d.id desc
        limit dead_letters.max_records
    ) as f
    where (dead_letters.queue is null or q.queue = dead_letters.queue)
      and pgclaim._allowed(q.queue, q.restricted, 'read', v_me)
    order by f.finished_at desc, f.id desc
    limit dead_letters.max_records;
end;
$fn$;

comment on function pgclaim.dead_letters(text, integer) is
'The newest dead letters (failed records kept) of a queue or of every readable queue, '
'with their last error, at most max_records (1..1000); no payloads. Raises PC001, 42501.';
