-- pgclaim.configure(worker_timeout, sweep_limit): changes the cluster-wide
-- settings given (null leaves one alone).
-- Returns: nothing. Raises: 22023 worker_timeout not positive or sweep_limit < 0.
-- Tables: config (update).
create or replace function pgclaim.configure(
    worker_timeout interval default null, sweep_limit integer default null
)
returns void
language plpgsql
volatile
security definer
set search_path = ''
as $fn$
begin
    perform pgclaim._check_interval('worker_timeout', configure.worker_timeout);
    if configure.sweep_limit < 0 then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format(
                'pgclaim: sweep_limit must not be negative, got %s', configure.sweep_limit);
    end if;
    update pgclaim.config as c set
        worker_timeout = coalesce(configure.worker_timeout, c.worker_timeout),
        sweep_limit = coalesce(configure.sweep_limit, c.sweep_limit);
end;
$fn$;

comment on function pgclaim.configure(interval, integer) is
'Sets worker_timeout (a worker silent that long is dead) and sweep_limit (expired '
'leases each claim_batch takes back). Raises 22023.';
