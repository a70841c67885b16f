-- pgclaim.cancel(ids, queue, error_like, min_attempt): pending or running records
-- become cancelled (moved to pgclaim.finished, _finish); a running record's
-- holder then finds its reports refused. Which ones: those among ids, or every
-- unfinished record of queue, narrowed by every filter given: of queue, with
-- last_error LIKE error_like (a record waiting for its retry), on attempt
-- min_attempt or later (attempts made so far). At least ids or queue is needed.
-- Returns: how many it cancelled; finished, unknown and unmatched ids are skipped.
-- Raises: PC001 unknown queue; 22004 neither ids nor queue, a null element of ids;
-- 22023 more ids than config.max_ids, error_like empty, over 1000 bytes or not
-- printable, min_attempt outside 1..1000.
-- Waits at most 5 s for row locks (55P03, retried by the client).
-- Tables: queues (read), records (delete), finished (insert).
create or replace function pgclaim.cancel(
    ids bigint[] default null,
    queue text default null,
    error_like text default null,
    min_attempt integer default null
)
returns integer
language plpgsql
volatile
security definer
set search_path = pg_catalog, pg_temp
set lock_timeout = '5s'
as $fn$
declare
    v_ids bigint [] := cancel.ids;
    v_count integer;
begin
    if cancel.ids is null and cancel.queue is null then
        raise exception using
            errcode = '22004', message = 'pgclaim: cancel needs ids or a queue';
    end if;
    if cancel.ids is not null then
        perform pgclaim._check_ids(cancel.ids, null);
    end if;
    if cancel.queue is not null then
        perform pgclaim._queue(cancel.queue);
    end if;
    perform pgclaim._check_dead_filter(cancel.error_like, cancel.min_attempt);
    if cancel.queue is not null or cancel.error_like is not null
       or cancel.min_attempt is not null then
        -- The filters pick the ids (locked, so that they cannot finish meanwhile);
        -- _finish then moves them as for a list of ids.
        select pg_catalog.array_agg(r.id order by r.id) into v_ids
        from (
            select r.id from pgclaim.records as r
            where (cancel.ids is null or r.id = any(cancel.ids))
              and (cancel.queue is null or r.queue = cancel.queue)
              and (cancel.error_like is null or r.last_error like cancel.error_like)
              and (cancel.min_attempt is null or r.attempt >= cancel.min_attempt)
            order by r.id
            for update
        ) as r;
        if v_ids is null then
            return 0;
        end if;
    end if;
    select pg_catalog.count(*)::integer into v_count
    from pgclaim._finish(v_ids, 'cancelled', pgclaim._now(), null, '{pending,running}') as f;
    return v_count;
end;
$fn$;

comment on function pgclaim.cancel(bigint[], text, text, integer) is
'Cancels the pending or running records among ids, or those of queue the filters pick '
'(error_like, min_attempt); returns how many.';
