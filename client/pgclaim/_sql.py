"""Every SQL statement the client sends, in one place: one call of a pgclaim function each.

Values are always bound parameters; identifiers (a LISTEN channel, the setting names of
``create_queue`` and ``alter_queue``, taken from a fixed list) go through
``psycopg.sql.Identifier``.
"""
from collections.abc import Iterable

from psycopg import sql

#: The settings of a queue, in the order of ``create_queue`` and ``alter_queue``'s parameters,
#: with their SQL types. Calls name only the settings a caller gave, so that
#: ``pgclaim.create_queue``'s own defaults apply to the rest: the SQL is the one place they
#: are written. A test compares this with the functions' parameters in ``pg_proc``.
QUEUE_SETTINGS: dict[str, str] = {
    "lease": "interval",
    "max_attempts": "integer",
    "backoff_base": "interval",
    "backoff_max": "interval",
    "retention": "interval",
    "max_payload_bytes": "integer",
    "max_lease": "interval",
    "min_priority": "integer",
    "max_priority": "integer",
    "max_batch": "integer",
    "max_running": "integer",
    "rate": "double precision",
    "burst": "integer",
    "fair": "boolean",
    "dedup_window": "interval",
}


def _queue_call(function: str, settings: Iterable[str]) -> sql.Composed:
    names = list(settings)
    unknown = [name for name in names if name not in QUEUE_SETTINGS]
    if unknown:
        raise ValueError(f"pgclaim: not a queue setting: {', '.join(unknown)}")
    args = [sql.SQL("queue => {}").format(sql.Placeholder("queue"))]
    args += [sql.SQL("{} => {}").format(sql.Identifier(name), sql.Placeholder(name))
             for name in QUEUE_SETTINGS if name in names]
    return sql.SQL("select pgclaim.{}({})").format(sql.Identifier(function),
                                                    sql.SQL(", ").join(args))


def create_queue(settings: Iterable[str]) -> sql.Composed:
    """``pgclaim.create_queue`` naming ``queue`` and only the given ``settings`` (each one of
    ``QUEUE_SETTINGS``, bound as ``%(name)s``)."""
    return _queue_call("create_queue", settings)


def alter_queue(settings: Iterable[str]) -> sql.Composed:
    """``pgclaim.alter_queue`` naming ``queue`` and only the given ``settings``."""
    return _queue_call("alter_queue", settings)


DROP_QUEUE = "select pgclaim.drop_queue(queue => %(queue)s, force => %(force)s)"
PAUSE_QUEUE = "select pgclaim.pause_queue(queue => %(queue)s)"
RESUME_QUEUE = "select pgclaim.resume_queue(queue => %(queue)s)"
ENQUEUE = (
    "select pgclaim.enqueue(queue => %(queue)s, payload => %(payload)s,"
    " priority => %(priority)s, run_at => %(run_at)s, dedup_key => %(dedup_key)s,"
    " max_attempts => %(max_attempts)s, group_key => %(group_key)s)"
)
ENQUEUE_ITEMS = (
    "select id, created from pgclaim.enqueue_items(queue => %(queue)s, items => %(items)s)"
)
NEXT_ELIGIBLE = "select pgclaim.next_eligible(queue => %(queue)s)"
SCHEDULE = (
    "select pgclaim.schedule(name => %(name)s, queue => %(queue)s, payload => %(payload)s,"
    " cron => %(cron)s, every => %(every)s, priority => %(priority)s,"
    " max_attempts => %(max_attempts)s, group_key => %(group_key)s, timezone => %(timezone)s)"
)
UNSCHEDULE = "select pgclaim.unschedule(name => %(name)s)"
TICK = "select pgclaim.tick()"
SCHEDULES = (
    "select name, queue, cron, every, timezone, payload, priority, max_attempts, group_key,"
    " last_slot, last_id, next_slot, created_at from pgclaim.schedule_status order by name"
)
ENQUEUE_BATCH = (
    "select id from pgclaim.enqueue_batch(queue => %(queue)s, payloads => %(payloads)s::jsonb[],"
    " priority => %(priority)s, run_at => %(run_at)s) as id"
)
# The queue of every record is the one asked for: not sent back.
CLAIM = (
    "select id, payload, attempt, max_attempts, priority, enqueued_at, run_at,"
    " lease_until, lease_token from pgclaim.claim_batch(queue => %(queue)s,"
    " worker_id => %(worker_id)s, batch_size => %(batch_size)s, lease => %(lease)s)"
)
COMPLETE = (
    "select pgclaim.complete(worker_id => %(worker_id)s, ids => %(ids)s,"
    " lease_tokens => %(lease_tokens)s)"
)
FAIL = (
    "select pgclaim.fail(worker_id => %(worker_id)s, id => %(id)s, error => %(error)s,"
    " retry_after => %(retry_after)s, lease_token => %(lease_token)s, fatal => %(fatal)s)"
)
FAIL_BATCH = (
    "select id, status from pgclaim.fail_batch(worker_id => %(worker_id)s, ids => %(ids)s,"
    " errors => %(errors)s, lease_tokens => %(lease_tokens)s,"
    " retry_after => %(retry_after)s::interval[], fatal => %(fatal)s)"
)
EXTEND_LEASE = (
    "select pgclaim.extend_lease(worker_id => %(worker_id)s, ids => %(ids)s,"
    " lease => %(lease)s, lease_tokens => %(lease_tokens)s)"
)
RELEASE = (
    "select pgclaim.release(worker_id => %(worker_id)s, ids => %(ids)s,"
    " lease_tokens => %(lease_tokens)s)"
)
REGISTER_WORKER = "select pgclaim.register_worker(worker_id => %(worker_id)s, info => %(info)s)"
HEARTBEAT = "select pgclaim.heartbeat(worker_id => %(worker_id)s, ids => %(ids)s)"
DEREGISTER_WORKER = "select pgclaim.deregister_worker(worker_id => %(worker_id)s)"
RECLAIM_ORPHANS = "select pgclaim.reclaim_orphans(max_records => %(max_records)s)"
RETRY_FAILED = (
    "select pgclaim.retry_failed(queue => %(queue)s, ids => %(ids)s,"
    " error_like => %(error_like)s, finished_after => %(finished_after)s,"
    " finished_before => %(finished_before)s, min_attempt => %(min_attempt)s)"
)
CANCEL = (
    "select pgclaim.cancel(ids => %(ids)s, queue => %(queue)s, error_like => %(error_like)s,"
    " min_attempt => %(min_attempt)s)"
)
HOLDS = "select pgclaim.holds(id => %(id)s, lease_token => %(lease_token)s)"
RUN = (
    "select id, status, error from pgclaim.run(queue => %(queue)s,"
    " handler => %(handler)s::regprocedure, max_records => %(max_records)s,"
    " time_budget => %(time_budget)s)"
)
LATENCY = (
    "select measure, records, p50, p95, p99, max, sum_seconds, bucket_le, bucket_count"
    " from pgclaim.latency(queue => %(queue)s, since => %(since)s)"
)
PURGE = (
    "select pgclaim.purge(queue => %(queue)s, older_than => %(older_than)s,"
    " max_records => %(max_records)s)"
)
CONFIGURE = (
    "select pgclaim.configure(worker_timeout => %(worker_timeout)s,"
    " sweep_limit => %(sweep_limit)s, max_ids => %(max_ids)s,"
    " max_error_bytes => %(max_error_bytes)s, max_info_bytes => %(max_info_bytes)s,"
    " purge_limit => %(purge_limit)s)"
)
GRANT_QUEUE = (
    "select pgclaim.grant_queue(queue => %(queue)s, role => %(role)s,"
    " privileges => %(privileges)s)"
)
REVOKE_QUEUE = (
    "select pgclaim.revoke_queue(queue => %(queue)s, role => %(role)s,"
    " privileges => %(privileges)s)"
)
STATS = (
    "select queue, paused, pending, scheduled, running, completed, failed, cancelled,"
    " oldest_pending_age, completed_last_minute, blocked from pgclaim.queue_stats order by queue"
)
WORKERS = (
    "select worker_id, info, started_at, last_seen, silent_for, alive, held"
    " from pgclaim.worker_status order by worker_id"
)
HEALTH = (
    "select pgclaim.health(max_xact_age => %(max_xact_age)s,"
    " max_pending_age => %(max_pending_age)s)"
)
SCHEMA_VERSION = "select pgclaim.schema_version()"
METRICS = "select metric, queue, status, value from pgclaim.metrics()"
DEAD_LETTERS = (
    "select id, queue, attempt, max_attempts, worker_id, enqueued_at, finished_at, last_error"
    " from pgclaim.dead_letters(queue => %(queue)s, max_records => %(max_records)s)"
)
STUCK = (
    "select id, queue, worker_id, attempt, max_attempts, lease_until, reason, stuck_for"
    " from pgclaim.stuck_records order by stuck_for desc, id limit %(max_records)s"
)

# doctor: facts about the server and its settings.
SERVER_VERSION = "select current_setting('server_version_num')::int, version()"
SCHEMA_INSTALLED = "select to_regnamespace('pgclaim') is not null"
PGTAP_AVAILABLE = (
    "select default_version, installed_version from pg_available_extensions"
    " where name = 'pgtap'"
)
SETTINGS = (
    "select name, setting, unit from pg_settings where name = any(%(names)s) order by name"
)


# The worker's check that LISTEN works: a notification on its own probe channel, sent
# through the client (through a pooler, when there is one).
LISTEN_PROBE = "select pg_catalog.pg_notify(%(channel)s, '')"


def listen(channel: str) -> sql.Composed:
    """``LISTEN`` on ``channel``, quoted as an identifier."""
    return sql.SQL("listen {}").format(sql.Identifier(channel))


def channel(queue: str) -> str:
    """The notification channel of ``queue``."""
    return "pgclaim_" + queue
