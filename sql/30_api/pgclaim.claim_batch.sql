-- pgclaim.claim_batch(queue, worker_id, batch_size, lease)
-- Takes back up to config.sweep_limit expired leases of the queue, then hands
-- out at most batch_size due pending records in (priority desc, run_at, id)
-- order, skipping rows other claimers hold: each is marked running, held by
-- worker_id until lease_until, its attempt counted, under a new lease_token.
-- A paused queue hands out nothing. With max_running or rate set, the claim
-- first takes its allowance (_flow_take: the queue's claims take turns) and hands
-- out at most that many; what it does not use goes back to the token bucket.
-- Records waiting behind the head of their FIFO group have priority
-- -2147483648 (below every queue's min_priority) and run_at 'infinity': the
-- claim's index scan stops before them, however many there are.
-- When a periodic schedule is due, the claim first enqueues its slot (_tick).
-- Each claim draws a random lease_token and records the role it was made as
-- (_caller): only that role (or a pgclaim_admin) may report on the records.
-- Returns: setof pgclaim.claimed, in hand-out order.
-- Raises: PC001 unknown queue; 42501 no claim privilege on a restricted queue;
-- 22004 null worker_id; 22023 batch_size outside 1..the queue's max_batch, lease
-- not positive or above the queue's max_lease.
-- Tables: queues, config, queue_grants (read), records (update), queue_flow (update),
-- schedules (read; and _tick's when one is due).
create or replace function pgclaim.claim_batch(
    queue text,
    worker_id text,
    batch_size integer default 100,
    lease interval default null
)
returns setof pgclaim.claimed
language plpgsql
volatile
security definer
set search_path = pg_catalog, pg_temp
as $fn$
declare
    v_q pgclaim.queues;
    v_now timestamptz;
    v_lease interval;
    v_token bigint;
    v_sweep integer;
    v_me oid := pgclaim._caller();
    v_limit integer;
    v_n integer;
begin
    v_q := pgclaim._queue(claim_batch.queue);
    perform pgclaim._require(v_q, 'claim', v_me);
    perform pgclaim._check_text('worker_id', claim_batch.worker_id);
    perform pgclaim._check_int('batch_size', claim_batch.batch_size, 1, v_q.max_batch);
    perform pgclaim._check_interval('lease', claim_batch.lease, true, false, v_q.max_lease);
    if v_q.paused then
        return;
    end if;

    select c.sweep_limit into v_sweep from pgclaim.config as c;
    perform pgclaim._reclaim(claim_batch.queue, v_sweep, false);

    v_now := pgclaim._now();
    v_lease := coalesce(claim_batch.lease, v_q.lease);
    v_token := pgclaim._lease_token();
    -- A periodic schedule due: its slot is enqueued first (_tick). Without one
    -- this is a probe of an index, empty in a database without schedules.
    if exists (select from pgclaim.schedules as s where s.next_slot <= v_now) then
        perform pgclaim._tick(v_now);
    end if;
    v_limit := claim_batch.batch_size;
    if v_q.max_running is not null or v_q.rate is not null then
        v_limit := pgclaim._flow_take(v_q, v_limit, v_now);
        if v_limit = 0 then
            return;
        end if;
    end if;

    -- Lock inside a materialized CTE: the LIMIT is applied once, never re-run.
    return query
    with picked as materialized (
        select r.id from pgclaim.records as r
        where r.queue = claim_batch.queue
          and r.status = 'pending'
          and r.priority > -2147483648
          and r.run_at <= v_now
        order by r.priority desc, r.run_at, r.id
        limit v_limit
        for update skip locked
    ),
    claimed as (
        update pgclaim.records as r set
            status = 'running',
            worker_id = claim_batch.worker_id,
            attempt = r.attempt + 1,
            lease_until = v_now + v_lease,
            lease_token = v_token,
            lease_for = v_lease,
            holder_role = v_me,
            -- claim times for latency(): the first claim kept, the last one stamped
            first_claimed_at = coalesce(r.first_claimed_at, v_now), claimed_at = v_now
        from picked
        where r.id = picked.id
        returning r.id, r.queue, r.payload, r.attempt, r.max_attempts, r.priority,
            r.enqueued_at, r.run_at, r.lease_until, r.lease_token
    )
    select c.id, c.queue, c.payload, c.attempt, c.max_attempts, c.priority,
        c.enqueued_at, c.run_at, c.lease_until, c.lease_token
    from claimed as c
    order by c.priority desc, c.run_at, c.id;
    if v_q.rate is not null then
        get diagnostics v_n = row_count;
        if v_n < v_limit then
            update pgclaim.queue_flow as f set tokens = f.tokens + (v_limit - v_n)
            where f.queue = claim_batch.queue;
        end if;
    end if;
end;
$fn$;

comment on function pgclaim.claim_batch(text, text, integer, interval) is
'Claims up to batch_size (1..max_batch) due records of a queue for worker_id under a lease, '
'in (priority desc, run_at, id) order, with FOR UPDATE SKIP LOCKED; first takes back a '
'few expired leases. Raises PC001, 42501, 22004, 22023.';
