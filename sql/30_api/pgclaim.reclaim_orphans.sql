-- pgclaim.reclaim_orphans(max_records): takes back running records whose lease
-- expired or whose registered worker has been silent for config.worker_timeout:
-- to pending, or failed when no attempt is left. Then it deletes at most
-- config.purge_limit finished records past their queue's retention
-- (_purge_expired), so that retention holds without anyone running purge: every
-- Worker calls it now and then. Bounded and skip-locked, so every worker and
-- pg_cron may run it at once.
-- Returns: how many records it took back (the purged are not counted).
-- Raises: 22004/22023 max_records null or outside 1..1000000.
-- Tables: records (update), workers, config, queues (read), finished (delete),
-- queue_totals (upsert).
create or replace function pgclaim.reclaim_orphans(max_records integer default 10000)
returns integer
language plpgsql
volatile
security definer
set search_path = pg_catalog, pg_temp
as $fn$
declare
    v_count integer;
begin
    perform pgclaim._check_int('max_records', reclaim_orphans.max_records, 1, 1000000);
    v_count := pgclaim._reclaim(null, reclaim_orphans.max_records, true);
    perform pgclaim._purge_expired();
    return v_count;
end;
$fn$;

comment on function pgclaim.reclaim_orphans(integer) is
'Takes back records with an expired lease or a dead worker (at most max_records); '
'returns how many. Then deletes at most config.purge_limit finished records past their '
'queue''s retention. Safe to run from every worker at once.';
