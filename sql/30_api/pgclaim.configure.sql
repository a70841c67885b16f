-- pgclaim.configure(worker_timeout, sweep_limit, max_ids, max_error_bytes,
--     max_info_bytes, purge_limit): changes the cluster-wide settings given (null
-- leaves one alone); their defaults are the column defaults of pgclaim.config.
-- Returns: nothing. Raises: 22023 worker_timeout not positive, sweep_limit outside
-- 0..10000, max_ids outside 1..1000000, max_error_bytes outside 64..1048576,
-- max_info_bytes outside 2..1048576, purge_limit outside 0..100000.
-- Tables: config (update).
create or replace function pgclaim.configure(
    worker_timeout interval default null,
    sweep_limit integer default null,
    max_ids integer default null,
    max_error_bytes integer default null,
    max_info_bytes integer default null,
    purge_limit integer default null
)
returns void
language plpgsql
volatile
security definer
set search_path = pg_catalog, pg_temp
as $fn$
begin
    perform pgclaim._check_interval('worker_timeout', configure.worker_timeout);
    perform pgclaim._check_int('sweep_limit', configure.sweep_limit, 0, 10000, true);
    perform pgclaim._check_int('max_ids', configure.max_ids, 1, 1000000, true);
    perform pgclaim._check_int('max_error_bytes', configure.max_error_bytes, 64, 1048576, true);
    perform pgclaim._check_int('max_info_bytes', configure.max_info_bytes, 2, 1048576, true);
    perform pgclaim._check_int('purge_limit', configure.purge_limit, 0, 100000, true);
    update pgclaim.config as c set
        worker_timeout = coalesce(configure.worker_timeout, c.worker_timeout),
        sweep_limit = coalesce(configure.sweep_limit, c.sweep_limit),
        max_ids = coalesce(configure.max_ids, c.max_ids),
        max_error_bytes = coalesce(configure.max_error_bytes, c.max_error_bytes),
        max_info_bytes = coalesce(configure.max_info_bytes, c.max_info_bytes),
        purge_limit = coalesce(configure.purge_limit, c.purge_limit);
end;
$fn$;

comment on function pgclaim.configure(interval, integer, integer, integer, integer, integer) is
'Sets worker_timeout (a worker silent that long is dead), sweep_limit (expired leases '
'each claim_batch takes back), max_ids (ids in one call), max_error_bytes (error texts '
'are cut there), max_info_bytes (worker info) and purge_limit (expired finished records '
'each reclaim_orphans deletes). Raises 22023.';
