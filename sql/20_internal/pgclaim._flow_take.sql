-- pgclaim._flow_take(q, wanted, now): how many records a claim of queue q may
-- take now, for a queue with max_running or rate set (claim_batch). It updates
-- the queue's queue_flow row first, so the claims of the queue take turns until
-- each commits: the running count read after that (a new snapshot) includes
-- every earlier claim's records, and the cap holds exactly whatever the number
-- of claimers (under REPEATABLE READ a second claimer fails with 40001 instead).
-- The token bucket is refilled (rate per second since refilled_at, up to burst)
-- and the allowance taken from it; claim_batch gives back what it did not use.
-- Returns: the allowance, 0 to wanted. Raises: nothing.
-- Tables: queue_flow (insert, update), records (read).
create or replace function pgclaim._flow_take(
    q pgclaim.queues, wanted integer, now timestamptz
)
returns integer
language plpgsql
volatile
set search_path = pg_catalog, pg_temp
as $fn$
declare
    v_tokens double precision;
    v_allow integer := _flow_take.wanted;
    v_running integer;
begin
    update pgclaim.queue_flow as f set
        tokens = case
            when q.rate is null then f.tokens
            else least(
                q.burst::double precision,
                f.tokens + q.rate * greatest(
                    extract(epoch from _flow_take.now - f.refilled_at)::double precision, 0))
        end,
        refilled_at = greatest(f.refilled_at, _flow_take.now)
    where f.queue = q.queue
    returning f.tokens into v_tokens;
    if not found then
        -- made by create_queue or alter_queue; missing only if removed by hand
        insert into pgclaim.queue_flow as f (queue, tokens, refilled_at)
        values (q.queue, coalesce(q.burst, 0), _flow_take.now)
        on conflict on constraint queue_flow_pkey do nothing;
        return 0;
    end if;
    if q.rate is not null then
        v_allow := least(v_allow, pg_catalog.floor(v_tokens)::integer);
    end if;
    if q.max_running is not null and v_allow > 0 then
        select pg_catalog.count(*)::integer into v_running
        from pgclaim.records as r
        where r.queue = q.queue and r.status = 'running';
        v_allow := least(v_allow, greatest(q.max_running - v_running, 0));
    end if;
    if q.rate is not null and v_allow > 0 then
        update pgclaim.queue_flow as f set tokens = f.tokens - v_allow
        where f.queue = q.queue;
    end if;
    return v_allow;
end;
$fn$;

comment on function pgclaim._flow_take(pgclaim.queues, integer, timestamptz) is
'Internal: takes a claim''s turn and allowance under the queue''s max_running and rate.';
