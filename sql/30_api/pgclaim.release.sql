-- pgclaim.release(worker_id, ids, lease_tokens)
-- Gives back, unprocessed, the records among ids that worker_id holds: they are
-- pending again at once and the attempt is not counted (graceful shutdown).
-- Returns: how many it released. Raises: 22004 null worker_id or ids; 22023
-- lease_tokens not matching ids.
-- Tables: records (update).
create or replace function pgclaim.release(
    worker_id text, ids bigint[], lease_tokens bigint[] default null
)
returns integer
language plpgsql
volatile
security definer
set search_path = ''
as $fn$
declare
    v_count integer;
begin
    perform pgclaim._check_text('worker_id', release.worker_id);
    perform pgclaim._check_ids(release.ids, release.lease_tokens);
    update pgclaim.records as r set
        status = 'pending',
        attempt = r.attempt - 1,
        worker_id = null, lease_until = null, lease_token = null, lease_for = null
    from rows from (
        pg_catalog.unnest(release.ids), pg_catalog.unnest(release.lease_tokens)
    ) as u (id, token)
    where r.id = u.id
      and r.status = 'running'
      and r.worker_id = release.worker_id
      and (u.token is null or r.lease_token = u.token);
    get diagnostics v_count = row_count;
    if v_count > 0 then
        perform pg_catalog.pg_notify('pgclaim_' || q.queue, '')
        from (
            select distinct r.queue from pgclaim.records as r
            where r.id = any(release.ids)
        ) as q;
    end if;
    return v_count;
end;
$fn$;

comment on function pgclaim.release(text, bigint[], bigint[]) is
'Releases records that worker_id holds back to pending without counting the attempt; '
'returns how many.';
