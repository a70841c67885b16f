-- pgclaim.complete(worker_id, ids, lease_tokens)
-- Marks completed the records among ids that worker_id holds now (and, where
-- lease_tokens is given, position by position, under that very claim).
-- Returns: how many records it completed; ids it may not touch are skipped.
-- Raises: 22004 null worker_id or ids; 22023 lease_tokens not matching ids.
-- Tables: records (update).
create or replace function pgclaim.complete(
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
    v_now timestamptz := pgclaim._now();
    v_count integer;
begin
    perform pgclaim._check_text('worker_id', complete.worker_id);
    perform pgclaim._check_ids(complete.ids, complete.lease_tokens);
    update pgclaim.records as r set
        status = 'completed',
        finished_at = v_now,
        lease_until = null
    from (
        -- Rows are locked in id order, as cancel and every other report lock them,
        -- so that two reports on overlapping ids cannot deadlock.
        select t.id, t.token
        from rows from (
            pg_catalog.unnest(complete.ids), pg_catalog.unnest(complete.lease_tokens)
        ) as t (id, token)
        order by t.id
    ) as u
    where r.id = u.id
      -- compared as text so that the planner cannot read the partial index of
      -- running records whole instead of looking each id up by primary key
      and r.status::text = 'running'
      and r.worker_id = complete.worker_id
      and (u.token is null or r.lease_token = u.token);
    get diagnostics v_count = row_count;
    return v_count;
end;
$fn$;

comment on function pgclaim.complete(text, bigint[], bigint[]) is
'Completes the records among ids that worker_id holds (under the given lease_tokens, '
'when passed); returns how many it completed and skips the rest.';
