-- pgclaim: every revoke and grant, in one place.
-- pgclaim_producer enqueues; pgclaim_worker claims and reports; pgclaim_admin
-- may do everything. No role reaches the tables: the functions are SECURITY
-- DEFINER and run as pgclaim_owner, which owns nothing outside schema pgclaim.
-- tests/sql/privileges/grants.sql holds the whole matrix.

-- A function a later release adds is executable by nobody until granted here.
alter default privileges for role pgclaim_owner revoke execute on functions from public;

revoke all on schema pgclaim from public;
grant usage on schema pgclaim to pgclaim_producer, pgclaim_worker, pgclaim_admin;

-- Start from nothing (an upgrade may find grants an older release made), then
-- grant exactly what each role needs.
revoke all on all tables in schema pgclaim
from public, pgclaim_producer, pgclaim_worker, pgclaim_admin;
revoke all on all sequences in schema pgclaim
from public, pgclaim_producer, pgclaim_worker, pgclaim_admin;
revoke all on all functions in schema pgclaim
from public, pgclaim_producer, pgclaim_worker, pgclaim_admin;

-- The views call these in their reader's name.
grant execute on function pgclaim._now() to pgclaim_worker, pgclaim_admin;
grant execute on function pgclaim._caller() to pgclaim_worker, pgclaim_admin;
grant execute on function pgclaim._admin(oid) to pgclaim_worker, pgclaim_admin;
grant execute on function pgclaim._allowed(text, boolean, text, oid) to
pgclaim_worker, pgclaim_admin;
grant execute on function pgclaim._queue_counts(boolean) to pgclaim_worker, pgclaim_admin;
-- run() is security invoker: it checks its arguments with these in its caller's name.
grant execute on function pgclaim._check_int(text, bigint, bigint, bigint, boolean) to
pgclaim_worker, pgclaim_admin;
grant execute on function pgclaim._check_interval(text, interval, boolean, boolean, interval) to
pgclaim_worker, pgclaim_admin;

grant execute on function pgclaim.schema_version() to
pgclaim_producer, pgclaim_worker, pgclaim_admin;
grant execute on function pgclaim.health(interval, interval) to
pgclaim_producer, pgclaim_worker, pgclaim_admin;
-- Monitoring reads: per-queue counts and counters, as health() gives them.
grant execute on function pgclaim.metrics() to pgclaim_producer, pgclaim_worker, pgclaim_admin;
grant execute on function pgclaim.dead_letters(text, integer) to pgclaim_worker, pgclaim_admin;

grant execute on function pgclaim.enqueue(
    text, jsonb, integer, timestamptz, text, integer, text
) to pgclaim_producer, pgclaim_admin;
grant execute on function pgclaim.enqueue_batch(text, jsonb[], integer, timestamptz) to
pgclaim_producer, pgclaim_admin;
grant execute on function pgclaim.enqueue_items(text, jsonb) to pgclaim_producer, pgclaim_admin;

grant execute on function pgclaim.claim_batch(text, text, integer, interval) to
pgclaim_worker, pgclaim_admin;
grant execute on function pgclaim.complete(text, bigint[], bigint[]) to
pgclaim_worker, pgclaim_admin;
grant execute on function pgclaim.fail(text, bigint, text, interval, bigint, boolean) to
pgclaim_worker, pgclaim_admin;
grant execute on function pgclaim.fail_batch(
    text, bigint[], text[], bigint[], interval[], boolean[]
) to pgclaim_worker, pgclaim_admin;
grant execute on function pgclaim.extend_lease(text, bigint[], interval, bigint[]) to
pgclaim_worker, pgclaim_admin;
grant execute on function pgclaim.release(text, bigint[], bigint[]) to
pgclaim_worker, pgclaim_admin;
grant execute on function pgclaim.register_worker(text, jsonb) to
pgclaim_worker, pgclaim_admin;
grant execute on function pgclaim.heartbeat(text, bigint[]) to pgclaim_worker, pgclaim_admin;
grant execute on function pgclaim.deregister_worker(text) to pgclaim_worker, pgclaim_admin;
grant execute on function pgclaim.reclaim_orphans(integer) to pgclaim_worker, pgclaim_admin;
grant execute on function pgclaim.holds(bigint, bigint) to pgclaim_worker, pgclaim_admin;
-- Needed to create a trigger with it; it runs in the writer's name (security invoker).
grant execute on function pgclaim.fence_trigger() to pgclaim_worker, pgclaim_admin;
grant execute on function pgclaim.run(text, regprocedure, integer, interval) to
pgclaim_worker, pgclaim_admin;
grant execute on function pgclaim.latency(text, interval) to pgclaim_worker, pgclaim_admin;
grant execute on function pgclaim.next_eligible(text) to pgclaim_worker, pgclaim_admin;
grant execute on function pgclaim.tick() to pgclaim_worker, pgclaim_admin;

grant execute on function pgclaim.create_queue(
    text, interval, integer, interval, interval, interval, integer, interval, integer, integer,
    integer, integer, double precision, integer, boolean, interval
) to pgclaim_admin;
grant execute on function pgclaim.alter_queue(
    text, interval, integer, interval, interval, interval, integer, interval, integer, integer,
    integer, integer, double precision, integer, boolean, interval
) to pgclaim_admin;
grant execute on function pgclaim.drop_queue(text, boolean) to pgclaim_admin;
grant execute on function pgclaim.schedule(
    text, text, jsonb, text, interval, integer, integer, text, text
) to pgclaim_admin;
grant execute on function pgclaim.unschedule(text) to pgclaim_admin;
grant execute on function pgclaim.pause_queue(text) to pgclaim_admin;
grant execute on function pgclaim.resume_queue(text) to pgclaim_admin;
grant execute on function pgclaim.grant_queue(text, text, text[]) to pgclaim_admin;
grant execute on function pgclaim.revoke_queue(text, text, text[]) to pgclaim_admin;
grant execute on function pgclaim.retry_failed(
    text, bigint[], text, timestamptz, timestamptz, integer
) to pgclaim_admin;
grant execute on function pgclaim.cancel(bigint[], text, text, integer) to pgclaim_admin;
grant execute on function pgclaim.purge(text, interval, integer) to pgclaim_admin;
grant execute on function pgclaim.configure(
    interval, integer, integer, integer, integer, integer
) to pgclaim_admin;

grant select on pgclaim.queue_stats, pgclaim.worker_status, pgclaim.stuck_records to
pgclaim_worker, pgclaim_admin;
grant select on pgclaim.queue_permissions to pgclaim_admin;
grant select on pgclaim.schedule_status to pgclaim_admin;
