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
-- Each id is looked up by primary key, whatever the statistics say: a hash join
-- or a scan of the running records would read all of them to report on a few.
set enable_hashjoin = off
set enable_mergejoin = off
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
    from (
        -- Rows are locked in id order, as cancel and every other report lock them,
        -- so that two reports on overlapping ids cannot deadlock.
        select t.id, t.token
        from rows from (
            pg_catalog.unnest(release.ids), pg_catalog.unnest(release.lease_tokens)
        ) as t (id, token)
        order by t.id
    ) as u
    where r.id = u.id
      -- compared as text so that the planner cannot read the partial index of
      -- running records whole instead of looking each id up by primary key
      and r.status::text = 'running'
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
