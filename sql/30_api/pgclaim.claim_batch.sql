-- pgclaim.claim_batch(queue, worker_id, batch_size, lease)
-- Takes back up to config.sweep_limit expired leases of the queue, then hands
-- out at most batch_size due pending records in (priority desc, run_at, id)
-- order, skipping rows other claimers hold: each is marked running, held by
-- worker_id until lease_until, its attempt counted, under a new lease_token.
-- A paused queue hands out nothing.
-- Returns: setof pgclaim.claimed, in hand-out order.
-- Raises: PC001 unknown queue; 22004 null worker_id; 22023 batch_size outside
-- 1..10000, lease not positive. Tables: queues, config (read), records (update).
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
set search_path = ''
as $fn$
declare
    v_q pgclaim.queues;
    v_now timestamptz;
    v_lease interval;
    v_token bigint;
    v_sweep integer;
begin
    v_q := pgclaim._queue(claim_batch.queue);
    perform pgclaim._check_text('worker_id', claim_batch.worker_id);
    if claim_batch.batch_size is null
       or claim_batch.batch_size < 1 or claim_batch.batch_size > 10000 then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format(
                'pgclaim: batch_size must be between 1 and 10000, got %s',
                coalesce(claim_batch.batch_size::text, 'null'));
    end if;
    perform pgclaim._check_interval('lease', claim_batch.lease);
    if v_q.paused then
        return;
    end if;

    select c.sweep_limit into v_sweep from pgclaim.config as c;
    perform pgclaim._reclaim(claim_batch.queue, v_sweep, false);

    v_now := pgclaim._now();
    v_lease := coalesce(claim_batch.lease, v_q.lease);
    v_token := pg_catalog.nextval('pgclaim.lease_token_seq');

    -- Lock inside a materialized CTE: the LIMIT is applied once, never re-run.
    return query
    with picked as materialized (
        select r.id from pgclaim.records as r
        where r.queue = claim_batch.queue
          and r.status = 'pending'
          and r.run_at <= v_now
        order by r.priority desc, r.run_at, r.id
        limit claim_batch.batch_size
        for update skip locked
    ),
    claimed as (
        update pgclaim.records as r set
            status = 'running',
            worker_id = claim_batch.worker_id,
            attempt = r.attempt + 1,
            lease_until = v_now + v_lease,
            lease_token = v_token,
            lease_for = v_lease
        from picked
        where r.id = picked.id
        returning r.id, r.queue, r.payload, r.attempt, r.max_attempts, r.priority,
            r.enqueued_at, r.run_at, r.lease_until, r.lease_token
    )
    select c.id, c.queue, c.payload, c.attempt, c.max_attempts, c.priority,
        c.enqueued_at, c.run_at, c.lease_until, c.lease_token
    from claimed as c
    order by c.priority desc, c.run_at, c.id;
end;
$fn$;

comment on function pgclaim.claim_batch(text, text, integer, interval) is
'Claims up to batch_size (1..10000) due records of a queue for worker_id under a lease, '
'in (priority desc, run_at, id) order, with FOR UPDATE SKIP LOCKED; first takes back a '
'few expired leases. Raises PC001, 22004, 22023.';
