-- pgclaim._check_settings(q): validates a queue's settings as a whole, the one
-- place that says what a valid queue is (create_queue checks the new row,
-- alter_queue the row with its changes applied):
--   lease, backoff_base, backoff_max, retention  positive in every field, at most 100 years
--   max_attempts          1 to 1000
--   max_payload_bytes     16 bytes to 100 MiB (jsonb as stored, pg_column_size)
--   max_lease             at most 30 days, and lease <= max_lease
--   min_priority, max_priority  -2147483647 <= min_priority <= max_priority (the
--                         lowest integer marks records waiting behind a group's head)
--   max_batch             1 to 10000 (enqueue_batch length, claim_batch batch_size)
--   max_running           null (no cap) or 1 to 1000000
--   rate, burst           both null (no limit), or rate in (0, 1000000] records per
--                         second and burst 1 to 1000000
--   dedup_window          null, or positive in every field, at most 100 years
-- Returns: nothing. Raises: 22004 a null setting; 22023 a bad setting.
-- Tables: none.
create or replace function pgclaim._check_settings(q pgclaim.queues)
returns void
language plpgsql
immutable
set search_path = pg_catalog, pg_temp
as $fn$
begin
    perform pgclaim._check_interval('lease', q.lease, false);
    perform pgclaim._check_interval('backoff_base', q.backoff_base, false);
    perform pgclaim._check_interval('backoff_max', q.backoff_max, false);
    perform pgclaim._check_interval('retention', q.retention, false);
    perform pgclaim._check_int('max_attempts', q.max_attempts, 1, 1000);
    perform pgclaim._check_int('max_payload_bytes', q.max_payload_bytes, 16, 104857600);
    perform pgclaim._check_interval('max_lease', q.max_lease, false, false, '30 days');
    perform pgclaim._check_int('min_priority', q.min_priority, -2147483647, 2147483647);
    perform pgclaim._check_int('max_priority', q.max_priority, q.min_priority, 2147483647);
    perform pgclaim._check_int('max_batch', q.max_batch, 1, 10000);
    perform pgclaim._check_int('max_running', q.max_running, 1, 1000000, true);
    perform pgclaim._check_int('burst', q.burst, 1, 1000000, true);
    perform pgclaim._check_interval('dedup_window', q.dedup_window, true);
    if q.rate is not null and not (q.rate > 0 and q.rate <= 1000000) then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format(
                'pgclaim: rate must be more than 0 and at most 1000000 per second, got %s',
                q.rate);
    end if;
    if (q.rate is null) <> (q.burst is null) then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format(
                'pgclaim: rate and burst go together, got rate %s and burst %s',
                coalesce(q.rate::text, 'null'), coalesce(q.burst::text, 'null'));
    end if;
    if q.lease > q.max_lease then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format(
                'pgclaim: lease %s is longer than max_lease %s', q.lease, q.max_lease);
    end if;
end;
$fn$;

comment on function pgclaim._check_settings(pgclaim.queues) is
'Internal: raises 22004/22023 unless a queue''s settings are valid together.';
