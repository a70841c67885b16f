"""Every SQL statement the client sends, in one place: one call of a pgclaim function each."""

CREATE_QUEUE = (
    "select pgclaim.create_queue(queue => %(queue)s, lease => %(lease)s,"
    " max_attempts => %(max_attempts)s, backoff_base => %(backoff_base)s,"
    " backoff_max => %(backoff_max)s, retention => %(retention)s)"
)
ENQUEUE = (
    "select pgclaim.enqueue(queue => %(queue)s, payload => %(payload)s,"
    " priority => %(priority)s, run_at => %(run_at)s, dedup_key => %(dedup_key)s,"
    " max_attempts => %(max_attempts)s)"
)
ENQUEUE_BATCH = (
    "select id from pgclaim.enqueue_batch(queue => %(queue)s, payloads => %(payloads)s,"
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
HEARTBEAT = "select pgclaim.heartbeat(worker_id => %(worker_id)s)"
DEREGISTER_WORKER = "select pgclaim.deregister_worker(worker_id => %(worker_id)s)"
RECLAIM_ORPHANS = "select pgclaim.reclaim_orphans(max_records => %(max_records)s)"
RETRY_FAILED = "select pgclaim.retry_failed(queue => %(queue)s, ids => %(ids)s)"
CANCEL = "select pgclaim.cancel(ids => %(ids)s)"
PURGE = (
    "select pgclaim.purge(queue => %(queue)s, older_than => %(older_than)s,"
    " max_records => %(max_records)s)"
)
STATS = (
    "select queue, paused, pending, scheduled, running, completed, failed, cancelled,"
    " oldest_pending_age, completed_last_minute from pgclaim.queue_stats order by queue"
)
HEALTH = "select pgclaim.health()"
