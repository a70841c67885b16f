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
as $fn$
declare
    v_now timestamptz := pgclaim._now();
    v_count integer := 0;
    v_n integer;
    v_group record;
begin
    perform pgclaim._check_text('worker_id', extend_lease.worker_id);
    perform pgclaim._check_ids(extend_lease.ids, extend_lease.lease_tokens);
    perform pgclaim._check_interval('lease', extend_lease.lease);
    for v_group in
        select g.token, g.ids
        from pgclaim._token_groups(extend_lease.ids, extend_lease.lease_tokens) as g
    loop
        update pgclaim.records as r set
            lease_until = v_now + coalesce(extend_lease.lease, r.lease_for),
            lease_for = coalesce(extend_lease.lease, r.lease_for)
        where r.id = any(v_group.ids)
          -- status compared as text: the planner must not read the partial index of
          -- running records whole; it looks the ids up by primary key, in id order
          and r.status::text = 'running'
          and r.worker_id = extend_lease.worker_id
          and (v_group.token is null or r.lease_token = v_group.token);
        get diagnostics v_n = row_count;
        v_count := v_count + v_n;
    end loop;
    return v_count;
end;
$fn$;

comment on function pgclaim.extend_lease(text, bigint[], interval, bigint[]) is
'Extends the leases of the records among ids that worker_id holds; returns how many.';
