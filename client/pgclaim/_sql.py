"""Every SQL statement the client sends, in one place: one call of a pgclaim function each.

Values are always bound parameters; the only identifier (a LISTEN channel) goes through
``psycopg.sql.Identifier``.
"""
from psycopg import sql

CREATE_QUEUE = (
    "select pgclaim.create_queue(queue => %(queue)s, lease => %(lease)s,"
    " max_attempts => %(max_attempts)s, backoff_base => %(backoff_base)s,"
    " backoff_max => %(backoff_max)s, retention => %(retention)s)"
)
ALTER_QUEUE = (
    "select pgclaim.alter_queue(queue => %(queue)s, lease => %(lease)s,"
    " max_attempts => %(max_attempts)s, backoff_base => %(backoff_base)s,"
    " backoff_max => %(backoff_max)s, retention => %(retention)s)"
)
DROP_QUEUE = "select pgclaim.drop_queue(queue => %(queue)s, force => %(force)s)"
PAUSE_QUEUE = "select pgclaim.pause_queue(queue => %(queue)s)"
RESUME_QUEUE = "select pgclaim.resume_queue(queue => %(queue)s)"
ENQUEUE = (
    "select pgclaim.enqueue(queue => %(queue)s, payload => %(payload)s,"
    " priority => %(priority)s, run_at => %(run_at)s, dedup_key => %(dedup_key)s,"
    " max_attempts => %(max_attempts)s)"
)
ENQUEUE_BATCH = (
    "select id from pgclaim.enqueue_batch(queue => %(queue)s, payloads => %(payloads)s::jsonb[],"
    " priority => %(priority)s, run_at => %(run_at)s) as id"
)
CLAIM = (
    "select id, queue, payload, attempt, max_attempts, priority, enqueued_at, run_at,"
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
RETRY_FAILED = "select pgclaim.retry_failed(queue => %(queue)s, ids => %(ids)s)"
CANCEL = "select pgclaim.cancel(ids => %(ids)s)"
PURGE = (
    "select pgclaim.purge(queue => %(queue)s, older_than => %(older_than)s,"
    " max_records => %(max_records)s)"
)
CONFIGURE = (
    "select pgclaim.configure(worker_timeout => %(worker_timeout)s,"
    " sweep_limit => %(sweep_limit)s)"
)
STATS = (
    "select queue, paused, pending, scheduled, running, completed, failed, cancelled,"
    " oldest_pending_age, completed_last_minute from pgclaim.queue_stats order by queue"
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


def listen(channel: str) -> sql.Composed:
    """``LISTEN`` on ``channel``, quoted as an identifier."""
    return sql.SQL("listen {}").format(sql.Identifier(channel))


def channel(queue: str) -> str:
    """The notification channel of ``queue``."""
    return "pgclaim_" + queue
