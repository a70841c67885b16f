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
    v_count integer := 0;
    v_queues text[] := '{}'::text[];
    v_group record;
begin
    perform pgclaim._check_text('worker_id', release.worker_id);
    perform pgclaim._check_ids(release.ids, release.lease_tokens);
    for v_group in
        select g.token, g.ids
        from pgclaim._token_groups(release.ids, release.lease_tokens) as g
    loop
        with released as (
            update pgclaim.records as r set
                status = 'pending',
                attempt = r.attempt - 1,
                worker_id = null, lease_until = null, lease_token = null, lease_for = null
            where r.id = any(v_group.ids)
              -- status compared as text: the planner must not read the partial index of
              -- running records whole; it looks the ids up by primary key, in id order
              and r.status::text = 'running'
              and r.worker_id = release.worker_id
              and (v_group.token is null or r.lease_token = v_group.token)
            returning r.queue
        )
        select v_count + pg_catalog.count(*)::integer,
            v_queues || coalesce(pg_catalog.array_agg(distinct released.queue), '{}'::text[])
        into v_count, v_queues
        from released;
    end loop;
    -- Wake the workers of the queues that got records back.
    perform pg_catalog.pg_notify('pgclaim_' || q.queue, '')
    from (select distinct u.queue from pg_catalog.unnest(v_queues) as u (queue)) as q;
    return v_count;
end;
$fn$;

comment on function pgclaim.release(text, bigint[], bigint[]) is
'Releases records that worker_id holds back to pending without counting the attempt; '
'returns how many.';
