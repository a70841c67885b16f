"""A producer cannot break monitoring.

A record due at ``-infinity`` made queue_stats and health() fail for everyone (an
infinite interval cannot be computed): shown here by writing one past the functions.
Through the API a producer login is refused (22023) for ``-infinity`` and ``infinity``, in
enqueue and enqueue_batch, nothing changes, and the finite extremes of timestamptz are
accepted without breaking queue_stats or health().
"""
from __future__ import annotations

import pytest
from _seckit import ADMIN, PRODUCER, WORKER_A, SecDb, one, refused


def monitoring_works(db: SecDb) -> None:
    """queue_stats and health() answer, for a worker, a producer and an admin."""
    for login in (WORKER_A, ADMIN):
        conn = db.login(login)
        assert conn.execute("select * from pgclaim.queue_stats").fetchall()
        assert one(conn, "select pgclaim.health()")["queues"]
    assert one(db.login(PRODUCER), "select pgclaim.health()")["status"] in ("ok", "degraded")


@pytest.mark.parametrize("run_at", ["-infinity", "infinity"])
def test_a_producer_cannot_enqueue_an_infinite_run_at(db: SecDb, run_at: str) -> None:
    db.su.execute("select pgclaim.create_queue('mq')")
    db.enqueue("mq", 1)
    producer = db.login(PRODUCER)
    before = db.digest()
    with refused("22023") as err:
        producer.execute("select pgclaim.enqueue('mq', '{}', run_at => %s::timestamptz)",
                         (run_at,))
    assert "finite" in err[0].diag.message_primary
    with refused("22023"):
        producer.execute("select pgclaim.enqueue_batch('mq', array['{}'::jsonb], "
                         "run_at => %s::timestamptz)", (run_at,))
    assert db.digest() == before
    monitoring_works(db)


def test_the_finite_extremes_keep_monitoring_working(db: SecDb) -> None:
    db.su.execute("select pgclaim.create_queue('mq')")
    producer = db.login(PRODUCER)
    for run_at in ("4713-11-24 00:00:00+00 BC", "294276-12-31 23:59:59+00"):
        producer.execute("select pgclaim.enqueue('mq', '{}', run_at => %s::timestamptz)",
                         (run_at,))
    monitoring_works(db)
    stats = db.login(WORKER_A).execute(
        "select pending, scheduled from pgclaim.queue_stats").fetchall()
    assert stats == [(1, 1)]


def test_a_record_due_at_minus_infinity_would_break_monitoring(db: SecDb) -> None:
    """The attack, written past the functions: queue_stats and health() then fail with
    22008 for every reader. This is what the refusal above prevents."""
    db.su.execute("select pgclaim.create_queue('mq')")
    db.su.execute(
        "insert into pgclaim.records (queue, run_at, payload, max_attempts, enqueued_at) "
        "values ('mq', '-infinity', '{}', 1, pg_catalog.now())")
    worker = db.login(WORKER_A)
    with refused("22008"):
        worker.execute("select * from pgclaim.queue_stats")
    with refused("22008"):
        db.login(PRODUCER).execute("select pgclaim.health()")
