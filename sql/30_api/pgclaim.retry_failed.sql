-- pgclaim.retry_failed(queue, ids): failed records of the queue (all, or those
-- among ids) go back to pending, due now, with their attempts reset. A dedup_key
-- stays unique among unfinished records: a failed record whose key an unfinished
-- record holds is skipped, and of failed records sharing a key only the newest
-- is retried.
-- Returns: how many. Raises: PC001 unknown queue; 22004 a null element of ids;
-- 22023 more ids than config.max_ids. Waits at most 5 s for row locks (55P03).
-- Tables: records (update).
create or replace function pgclaim.retry_failed(queue text, ids bigint[] default null)
returns integer
language plpgsql
volatile
security definer
set search_path = pg_catalog, pg_temp
set lock_timeout = '5s'
as $fn$
declare
    v_now timestamptz := pgclaim._now();
    v_count integer;
begin
    perform pgclaim._queue(retry_failed.queue);
    if retry_failed.ids is not null then
        perform pgclaim._check_ids(retry_failed.ids, null);
    end if;
    update pgclaim.records as r set
        status = 'pending', attempt = 0, run_at = v_now, finished_at = null
    where r.queue = retry_failed.queue
      and r.status = 'failed'
      and (retry_failed.ids is null or r.id = any(retry_failed.ids))
      and (r.dedup_key is null or (
          not exists (
              select from pgclaim.records as u
              where u.queue = r.queue and u.dedup_key = r.dedup_key
                and u.status in ('pending', 'running')
          )
          and not exists (
              select from pgclaim.records as n
              where n.queue = r.queue and n.dedup_key = r.dedup_key
                and n.status = 'failed' and n.id > r.id
                and (retry_failed.ids is null or n.id = any(retry_failed.ids))
          )
      ));
    get diagnostics v_count = row_count;
    if v_count > 0 then
        perform pgclaim._notify(retry_failed.queue);
    end if;
    return v_count;
end;
$fn$;

comment on function pgclaim.retry_failed(text, bigint[]) is
'Puts failed records of a queue (all, or those among ids) back to pending with their '
'attempts reset (one per dedup_key still free); returns how many. Raises PC001.';
