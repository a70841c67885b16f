-- pgclaim._backoff(base, cap, attempt): the delay before the next attempt.
-- Returns: least(cap, base * 2^(attempt-1)) scaled by a random factor in
-- [0.5, 1.0] ("equal jitter"), so failing records do not retry in lock step.
-- Computed in seconds, so that a large base or attempt is capped instead of
-- overflowing the interval type. Raises: nothing. Tables: none.
create or replace function pgclaim._backoff(
    base interval, cap interval, attempt integer
)
returns interval
language sql
volatile
set search_path = pg_catalog, pg_temp
as $fn$
    select pg_catalog.make_interval(secs => least(
        extract(epoch from cap),
        extract(epoch from base) * pg_catalog.power(2, least(greatest(attempt - 1, 0), 30))
    ) * (0.5 + pg_catalog.random() / 2));
$fn$;

comment on function pgclaim._backoff(interval, interval, integer) is
'Internal: capped exponential backoff with equal jitter.';
