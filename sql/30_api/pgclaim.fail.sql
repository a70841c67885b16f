-- pgclaim.fail(worker_id, id, error, retry_after, lease_token, fatal)
-- Reports a failed attempt of a record that worker_id holds under the caller's
-- role (a pgclaim_admin may fail any worker's). With attempts left (and fatal
-- false) the record goes back to pending, due after retry_after or the queue's
-- backoff; otherwise it is dead-lettered as failed (_end_attempt). The error
-- text is kept in last_error, cut to config.max_error_bytes.
-- Returns: the new status, 'pending' or 'failed'.
-- Raises: PC002 no such record; PC003 worker_id does not hold it, under this role
-- (or under another lease_token): the message names neither the holder nor its
-- token; 22004 null worker_id or id; 22023 retry_after negative or over 100 years.
-- Waits at most 5 s for the record's row lock (55P03, retried by the client).
-- Tables: queues, config, finished (read), records (update, delete), finished (insert),
-- queue_totals (upsert).
create or replace function pgclaim.fail(
    worker_id text,
    id bigint,
    error text,
    retry_after interval default null,
    lease_token bigint default null,
    fatal boolean default false
)
returns text
language plpgsql
volatile
security definer
set search_path = pg_catalog, pg_temp
set lock_timeout = '5s'
as $fn$
declare
    v_now timestamptz := pgclaim._now();
    v_me oid := pgclaim._caller();
    v_r pgclaim.records;
    v_q pgclaim.queues;
    v_max integer;
    v_retry_at timestamptz;
    v_status pgclaim.status;
begin
    perform pgclaim._check_text('worker_id', fail.worker_id);
    if fail.id is null then
        raise exception using errcode = '22004', message = 'pgclaim: id must not be null';
    end if;
    perform pgclaim._check_interval('retry_after', fail.retry_after, true, true);
    select r.* into v_r from pgclaim.records as r where r.id = fail.id for update;
    if not found and not exists (select from pgclaim.finished as f where f.id = fail.id) then
        raise exception using
            errcode = 'PC002',
            message = pg_catalog.format('pgclaim: record %s does not exist', fail.id);
    end if;
    -- A finished record (no row in pgclaim.records) is held by nobody.
    if v_r.id is null or v_r.status <> 'running' or v_r.worker_id is distinct from fail.worker_id
       or (fail.lease_token is not null and v_r.lease_token <> fail.lease_token)
       or not (pgclaim._admin(v_me) or coalesce(v_r.holder_role, v_me) = v_me) then
        raise exception using
            errcode = 'PC003',
            message = pg_catalog.format(
                'pgclaim: worker %s does not hold record %s',
                pgclaim._show(fail.worker_id), fail.id),
            detail = 'Its lease was taken back, it finished, or another worker or role '
            'holds it.';
    end if;
    select q.* into v_q from pgclaim.queues as q where q.queue = v_r.queue;
    select c.max_error_bytes into v_max from pgclaim.config as c;
    v_retry_at := v_now + coalesce(
        fail.retry_after, pgclaim._backoff(v_q.backoff_base, v_q.backoff_max, v_r.attempt));
    select e.status into v_status
    from pgclaim._end_attempt(
        array[fail.id], array[pgclaim._clip(fail.error, v_max)], array[v_retry_at],
        array[coalesce(fail.fatal, false)], true, v_now
    ) as e;
    perform pgclaim._count_attempts('fail', array[v_r.queue], array[v_status]);
    return v_status::text;
end;
$fn$;

comment on function pgclaim.fail(text, bigint, text, interval, bigint, boolean) is
'Reports a failed attempt: back to pending after retry_after or the backoff while '
'attempts remain, else failed (also when fatal). Returns the new status. '
'Raises PC002 unknown record, PC003 not the holder.';
