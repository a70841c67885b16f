"""pgclaim's whole record lifecycle from Python with bare psycopg (no pgclaim client):
create a queue, enqueue, claim a batch, complete, fail, retry.

    DATABASE_URL=postgresql://app@db/app python examples/python/lifecycle.py

Each step runs as the role that would run it in production, on its own login:
``ADMIN_URL`` (a member of pgclaim_admin) creates the queue, reads stats and retries,
``PRODUCER_URL`` (pgclaim_producer) enqueues, ``WORKER_URL`` (pgclaim_worker) claims and
reports. A URL left out falls back to ``DATABASE_URL``. Every call is one SQL function in
named notation, each in its own short transaction (autocommit): a worker never keeps a
transaction open while it works on a record. Running it again starts over: the queue
``example_emails`` is dropped first.
"""
from __future__ import annotations

import json
import os
import sys
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

QUEUE = "example_emails"
WORKER_ID = "example-worker-1"


def url(name: str) -> str:
    value = os.environ.get(name) or os.environ.get("DATABASE_URL")
    if not value:
        sys.exit(f"set {name} or DATABASE_URL")
    return value


def say(role: str, text: str) -> None:
    print(f"[{role:<8}] {text}", flush=True)


def call(conn: psycopg.Connection[Any], statement: str, params: tuple[Any, ...]) -> Any:
    """The one value a pgclaim function returns."""
    row = conn.execute(statement, params).fetchone()
    assert row is not None
    return row[0]


def claim(worker: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    rows = worker.execute(
        "select id, attempt, payload, lease_token from pgclaim.claim_batch("
        "queue => %s, worker_id => %s, batch_size => %s)", (QUEUE, WORKER_ID, 10)).fetchall()
    say("worker", f"claimed {len(rows)} record(s):")
    for rid, attempt, payload, _ in rows:
        text = json.dumps(payload, separators=(",", ":"))
        say("worker", f"  id={rid} attempt={attempt} payload={text}")
    return rows


def stats(admin: psycopg.Connection[Any]) -> None:
    row = admin.execute(
        "select pending, running, completed, failed from pgclaim.queue_stats"
        " where queue = %s", (QUEUE,)).fetchone()
    assert row is not None
    say("admin", "queue_stats: pending={} running={} completed={} failed={}".format(*row))


def main() -> None:
    with psycopg.connect(url("ADMIN_URL"), autocommit=True) as admin, \
            psycopg.connect(url("PRODUCER_URL"), autocommit=True) as producer, \
            psycopg.connect(url("WORKER_URL"), autocommit=True) as worker:
        if admin.execute("select from pgclaim.queue_stats where queue = %s",
                         (QUEUE,)).fetchone() is not None:
            admin.execute("select pgclaim.drop_queue(queue => %s, force => true)", (QUEUE,))
            say("admin", f"dropped the queue {QUEUE} of an earlier run")
        admin.execute(
            "select pgclaim.create_queue(queue => %s, lease => '1 minute', max_attempts => 3,"
            " backoff_base => '1 second')", (QUEUE,))
        say("admin", f"created queue {QUEUE} (3 attempts, 1 s backoff)")

        payloads = [Jsonb({"to": to}) for to in
                    ("ada@example.com", "bob@example.com", "eve@example.com")]
        ids = [r[0] for r in producer.execute(
            "select pgclaim.enqueue_batch(queue => %s, payloads => %s::jsonb[])",
            (QUEUE, payloads)).fetchall()]
        say("producer", f"enqueued ids {ids}")

        batch = claim(worker)
        good = [r for r in batch if r[2]["to"] != "eve@example.com"]
        bad_id, _, _, bad_token = next(r for r in batch if r[2]["to"] == "eve@example.com")
        # Reports carry the lease tokens of the claim: a stale report is refused.
        done = call(worker,
                    "select pgclaim.complete(worker_id => %s, ids => %s, lease_tokens => %s)",
                    (WORKER_ID, [r[0] for r in good], [r[3] for r in good]))
        say("worker", f"complete {[r[0] for r in good]} -> {done}")

        status = call(worker,
                      "select pgclaim.fail(worker_id => %s, id => %s, error => %s,"
                      " retry_after => '0 seconds', lease_token => %s)",
                      (WORKER_ID, bad_id, "mailbox unavailable", bad_token))
        say("worker", f"fail {bad_id} (retry_after 0) -> {status}")

        (_, _, _, bad_token), = claim(worker)
        status = call(worker,
                      "select pgclaim.fail(worker_id => %s, id => %s, error => %s,"
                      " lease_token => %s, fatal => true)",
                      (WORKER_ID, bad_id, "mailbox does not exist", bad_token))
        say("worker", f"fail {bad_id} (fatal) -> {status}")
        stats(admin)

        retried = call(admin, "select pgclaim.retry_failed(queue => %s)", (QUEUE,))
        say("admin", f"retry_failed -> {retried}")

        batch = claim(worker)
        done = call(worker,
                    "select pgclaim.complete(worker_id => %s, ids => %s, lease_tokens => %s)",
                    (WORKER_ID, [r[0] for r in batch], [r[3] for r in batch]))
        say("worker", f"complete {[r[0] for r in batch]} -> {done}")
        stats(admin)


if __name__ == "__main__":
    main()
