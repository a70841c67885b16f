-- pgclaim.extend_lease(worker_id, ids, lease, lease_tokens)
-- Extends to now + lease (default: the length the record was claimed with) the
-- leases of the records among ids that worker_id holds.
-- Returns: how many leases it extended; ids it may not touch are skipped.
-- Raises: 22004 null worker_id or ids; 22023 lease_tokens not matching ids or
-- lease not positive. Tables: records (update).
create or replace function pgclaim.extend_lease(
    worker_id text,
    ids bigint[],
    lease interval default null,
    lease_tokens bigint[] default null
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
    perform pgclaim._check_text('worker_id', extend_lease.worker_id);
    perform pgclaim._check_ids(extend_lease.ids, extend_lease.lease_tokens);
    perform pgclaim._check_interval('lease', extend_lease.lease);
    update pgclaim.records as r set
        lease_until = v_now + coalesce(extend_lease.lease, r.lease_for),
        lease_for = coalesce(extend_lease.lease, r.lease_for)
    from (
        -- Rows are locked in id order, as cancel and every other report lock them,
        -- so that two reports on overlapping ids cannot deadlock.
        select t.id, t.token
        from rows from (
            pg_catalog.unnest(extend_lease.ids), pg_catalog.unnest(extend_lease.lease_tokens)
        ) as t (id, token)
        order by t.id
    ) as u
    where r.id = u.id
      -- compared as text so that the planner cannot read the partial index of
      -- running records whole instead of looking each id up by primary key
      and r.status::text = 'running'
      and r.worker_id = extend_lease.worker_id
      and (u.token is null or r.lease_token = u.token);
    get diagnostics v_count = row_count;
    return v_count;
end;
$fn$;

comment on function pgclaim.extend_lease(text, bigint[], interval, bigint[]) is
'Extends the leases of the records among ids that worker_id holds; returns how many.';
