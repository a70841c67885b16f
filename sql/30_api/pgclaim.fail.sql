-- pgclaim.fail(worker_id, id, error, retry_after, lease_token, fatal)
-- Reports a failed attempt. With attempts left (and fatal false) the record goes
-- back to pending, due after retry_after or the queue's backoff; otherwise it is
-- dead-lettered as failed. The error text is kept in last_error.
-- Returns: the new status, 'pending' or 'failed'.
-- Raises: PC002 no such record; PC003 worker_id does not hold it (or under
-- another lease_token); 22004 null worker_id or id; 22023 retry_after negative.
-- Tables: queues (read), records (update).
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
set search_path = ''
as $fn$
declare
    v_now timestamptz := pgclaim._now();
    v_r pgclaim.records;
    v_q pgclaim.queues;
    v_status pgclaim.status;
begin
    perform pgclaim._check_text('worker_id', fail.worker_id);
    if fail.id is null then
        raise exception using errcode = '22004', message = 'pgclaim: id must not be null';
    end if;
    if fail.retry_after < '0'::interval then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format(
                'pgclaim: retry_after must not be negative, got %L', fail.retry_after::text);
    end if;
    select r.* into v_r from pgclaim.records as r where r.id = fail.id for update;
    if not found then
        raise exception using
            errcode = 'PC002',
            message = pg_catalog.format('pgclaim: record %s does not exist', fail.id);
    end if;
    if v_r.status <> 'running' or v_r.worker_id is distinct from fail.worker_id
       or (fail.lease_token is not null and v_r.lease_token <> fail.lease_token) then
        raise exception using
            errcode = 'PC003',
            message = pg_catalog.format(
                'pgclaim: worker %L does not hold record %s', fail.worker_id, fail.id),
            detail = pg_catalog.format(
                'The record is %s, held by %s under lease token %s.',
                v_r.status, coalesce(v_r.worker_id, 'nobody'),
                coalesce(v_r.lease_token::text, 'none'));
    end if;
    if coalesce(fail.fatal, false) or v_r.attempt >= v_r.max_attempts then
        v_status := 'failed';
        update pgclaim.records as r set
            status = v_status, finished_at = v_now, lease_until = null,
            last_error = fail.error
        where r.id = fail.id;
    else
        select q.* into v_q from pgclaim.queues as q where q.queue = v_r.queue;
        v_status := 'pending';
        update pgclaim.records as r set
            status = v_status,
            run_at = v_now + coalesce(
                fail.retry_after,
                pgclaim._backoff(v_q.backoff_base, v_q.backoff_max, v_r.attempt),
                '0'::interval),
            worker_id = null, lease_until = null, lease_token = null, lease_for = null,
            last_error = fail.error
        where r.id = fail.id;
    end if;
    return v_status::text;
end;
$fn$;

comment on function pgclaim.fail(text, bigint, text, interval, bigint, boolean) is
'Reports a failed attempt: back to pending after retry_after or the backoff while '
'attempts remain, else failed (also when fatal). Returns the new status. '
'Raises PC002 unknown record, PC003 not the holder.';
