-- pgclaim.release(worker_id, ids, lease_tokens)
-- Gives back, unprocessed, the records among ids that worker_id holds (under the
-- caller's role and the given lease_tokens, as complete): they are pending again
-- at once and the attempt is not counted (graceful shutdown); their queues'
-- workers are woken (_report).
-- Returns: how many it released. Raises: 22004 null worker_id, ids or element;
-- 22023 lease_tokens not matching ids, more ids than config.max_ids.
-- Tables: records (update).
create or replace function pgclaim.release(
    worker_id text, ids bigint[], lease_tokens bigint[] default null
)
returns integer
language plpgsql
volatile
security definer
set search_path = pg_catalog, pg_temp
as $fn$
begin
    return pgclaim._report('release', release.worker_id, release.ids, release.lease_tokens, null);
end;
$fn$;

comment on function pgclaim.release(text, bigint[], bigint[]) is
'Releases records that worker_id holds back to pending without counting the attempt; '
'returns how many.';
