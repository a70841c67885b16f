-- pgclaim.fail_batch(worker_id, ids, errors, lease_tokens, retry_after, fatal)
-- Reports failed attempts of many records at once, as fail does for one: each
-- record among ids that worker_id holds under the caller's role (and, where
-- lease_tokens is given, under that claim) goes back to pending, due after its
-- retry_after (or the queue's backoff), or is dead-lettered when out of attempts
-- or fatal. errors, lease_tokens, retry_after and fatal hold one element per id
-- (null arrays: no error text, no token check, the backoff, not fatal).
-- Returns: (id, status) of each record it changed, status 'pending' or 'failed';
-- ids it may not touch are skipped, as in complete.
-- Raises: 22004 null worker_id, ids or element of ids or lease_tokens; 22023
-- arrays of another length than ids, more ids than config.max_ids, a retry_after
-- negative in any field or over 100 years (each checked as fail checks its one).
-- Waits at most 5 s for row locks (55P03).
-- Tables: queues, config (read), records (update), queue_totals (upsert).
create or replace function pgclaim.fail_batch(
    worker_id text,
    ids bigint[],
    errors text[],
    lease_tokens bigint[] default null,
    retry_after interval[] default null,
    fatal boolean[] default null
)
returns table (id bigint, status text)
language plpgsql
volatile
security definer
set search_path = pg_catalog, pg_temp
set lock_timeout = '5s'
as $fn$
declare
    v_now timestamptz := pgclaim._now();
    v_me oid := pgclaim._caller();
    v_admin boolean := pgclaim._admin(v_me);
    v_max integer;
    v_ids bigint [];
    v_errors text [];
    v_retry_at timestamptz [];
    v_fatal boolean [];
    v_queues text [];
    v_statuses pgclaim.status [];
begin
    perform pgclaim._check_text('worker_id', fail_batch.worker_id);
    perform pgclaim._check_ids(fail_batch.ids, fail_batch.lease_tokens);
    if pg_catalog.cardinality(fail_batch.errors) <> pg_catalog.cardinality(fail_batch.ids)
       or pg_catalog.cardinality(fail_batch.retry_after)
       <> pg_catalog.cardinality(fail_batch.ids)
       or pg_catalog.cardinality(fail_batch.fatal) <> pg_catalog.cardinality(fail_batch.ids) then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format(
                'pgclaim: errors, retry_after and fatal must have one element per id (%s)',
                pg_catalog.cardinality(fail_batch.ids));
    end if;
    perform pgclaim._check_interval(pg_catalog.format('retry_after[%s]', u.n), u.a, true, true)
    from pg_catalog.unnest(fail_batch.retry_after) with ordinality as u (a, n);
    select c.max_error_bytes into v_max from pgclaim.config as c;
    select
        pg_catalog.array_agg(h.id order by h.id),
        pg_catalog.array_agg(pgclaim._clip(h.error, v_max) order by h.id),
        pg_catalog.array_agg(v_now + coalesce(
            h.retry_after, pgclaim._backoff(h.backoff_base, h.backoff_max, h.attempt)
        ) order by h.id),
        pg_catalog.array_agg(coalesce(h.fatal, false) order by h.id)
    into v_ids, v_errors, v_retry_at, v_fatal
    from (
        select r.id, v.error, v.retry_after, v.fatal, r.attempt, q.backoff_base, q.backoff_max
        from rows from (
            pg_catalog.unnest(fail_batch.ids), pg_catalog.unnest(fail_batch.errors),
            pg_catalog.unnest(fail_batch.lease_tokens), pg_catalog.unnest(fail_batch.retry_after),
            pg_catalog.unnest(fail_batch.fatal)
        ) as v (id, error, token, retry_after, fatal)
        inner join pgclaim.records as r on r.id = v.id
        inner join pgclaim.queues as q on r.queue = q.queue
        where r.status::text = 'running'
          and r.worker_id = fail_batch.worker_id
          and (v.token is null or r.lease_token = v.token)
          and (v_admin or coalesce(r.holder_role, v_me) = v_me)
        order by r.id
        for update of r
    ) as h;
    if v_ids is null then
        return;
    end if;
    select
        pg_catalog.array_agg(e.id order by e.id),
        pg_catalog.array_agg(e.queue order by e.id),
        pg_catalog.array_agg(e.status order by e.id)
    into v_ids, v_queues, v_statuses
    from pgclaim._end_attempt(v_ids, v_errors, v_retry_at, v_fatal, true, v_now) as e;
    perform pgclaim._count_attempts('fail', v_queues, v_statuses);
    return query
    select u.id, u.status::text
    from rows from (pg_catalog.unnest(v_ids), pg_catalog.unnest(v_statuses)) as u (id, status)
    order by u.id;
end;
$fn$;

comment on function pgclaim.fail_batch(text, bigint[], text[], bigint[], interval[], boolean[]) is
'Reports failed attempts of the records among ids that worker_id holds (one error, token, '
'retry_after and fatal per id); returns (id, status) of each record it changed.';
