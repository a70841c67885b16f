-- pgclaim.extend_lease(worker_id, ids, lease, lease_tokens)
-- Extends to now + lease (default: the length the record was claimed with) the
-- leases of the records among ids that worker_id holds (under the caller's role
-- and the given lease_tokens, as complete; _report).
-- Returns: how many leases it extended; ids it may not touch are skipped.
-- Raises: 22004 null worker_id, ids or element; 22023 lease_tokens not matching
-- ids, more ids than config.max_ids, lease not positive or above the max_lease
-- of the queue of one of the records. Tables: queues (read), records (update).
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
set search_path = pg_catalog, pg_temp
as $fn$
declare
    v_queue text;
    v_max interval;
begin
    perform pgclaim._check_interval('lease', extend_lease.lease);
    if extend_lease.lease is not null then
        perform pgclaim._check_ids(extend_lease.ids, extend_lease.lease_tokens);
        select q.queue, q.max_lease into v_queue, v_max
        from pgclaim.queues as q
        where q.max_lease < extend_lease.lease
          and q.queue in (
              select r.queue from pgclaim.records as r where r.id = any(extend_lease.ids)
          )
        limit 1;
        if found then
            raise exception using
                errcode = '22023',
                message = pg_catalog.format(
                    'pgclaim: lease %s is longer than the max_lease %s of queue %L',
                    extend_lease.lease, v_max, v_queue);
        end if;
    end if;
    return pgclaim._report(
        'extend', extend_lease.worker_id, extend_lease.ids, extend_lease.lease_tokens,
        extend_lease.lease);
end;
$fn$;

comment on function pgclaim.extend_lease(text, bigint[], interval, bigint[]) is
'Extends the leases of the records among ids that worker_id holds; returns how many.';
