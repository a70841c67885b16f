-- pgclaim.reclaim_orphans(max_records): takes back running records whose lease
-- expired or whose registered worker has been silent for config.worker_timeout:
-- to pending, or failed when no attempt is left. Bounded and skip-locked, so
-- every worker and pg_cron may run it at once.
-- Returns: how many records it took back. Raises: 22004/22023 max_records null or
-- outside 1..1000000.
-- Tables: records (update), workers, config (read).
create or replace function pgclaim.reclaim_orphans(max_records integer default 10000)
returns integer
language plpgsql
volatile
security definer
set search_path = pg_catalog, pg_temp
as $fn$
begin
    perform pgclaim._check_int('max_records', reclaim_orphans.max_records, 1, 1000000);
    return pgclaim._reclaim(null, reclaim_orphans.max_records, true);
end;
$fn$;

comment on function pgclaim.reclaim_orphans(integer) is
'Takes back records with an expired lease or a dead worker (at most max_records); '
'returns how many. Safe to run from every worker at once.';
