"""The worker loop against a real database, in process and as a ``pgclaim worker`` process."""
from __future__ import annotations

import asyncio
import collections
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from pgdb import freeze_clock

import pgclaim
from pgclaim import Claimed, Fatal, Retry, RetryPolicy, Worker, WorkerStats

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PGCLAIM = str(Path(sys.executable).with_name("pgclaim"))


@pytest.fixture
def client(dsn: str) -> Iterator[pgclaim.QueueClient]:
    policy = RetryPolicy(attempts=3, base=0.05, cap=0.2, deadline=5)
    with pgclaim.QueueClient(dsn, retry=policy, pool_timeout=1.0) as c:
        c.create_queue("q", lease=60, max_attempts=3, backoff_base=0.001, backoff_max=0.01)
        yield c


def wait_for(cond: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def counts(conn: psycopg.Connection[Any]) -> dict[str, int]:
    rows = conn.execute("select status::text, count(*) from pgclaim.records group by 1")
    return dict(rows.fetchall())


def finished(conn: psycopg.Connection[Any], n: int) -> Callable[[], bool]:
    """True once ``n`` records are completed or failed."""
    return lambda: sum(v for k, v in counts(conn).items() if k in ("completed", "failed")) == n


def hold_until_released(dsn: str, worker: Worker, released: int) -> None:
    """In a handler: busy until the worker is stopping and has released ``released``
    records it had not started (pending again, attempt given back). Handlers still queued
    would otherwise start, and end at once, in the moment between stop and the release."""
    with psycopg.connect(dsn, autocommit=True) as own:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if worker.stopping and own.execute(
                    "select count(*) from pgclaim.records where status = 'pending'"
                    " and attempt = 0").fetchone() == (released,):
                return
            time.sleep(0.01)


def run_until(worker: Worker, cond: Callable[[], bool], what: str,
              timeout: float = 60.0) -> WorkerStats:
    """Runs ``worker`` in a thread until ``cond()`` holds, then stops it and returns its
    stats. (``run(until_empty=True)`` stops at the first empty claim, which may come while
    a failed record waits out its backoff: these tests wait for the database instead.)"""
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        wait_for(cond, timeout=timeout, what=what)
    finally:
        worker.stop()
        thread.join(30)
    assert not thread.is_alive()
    return worker.stats


def test_outcomes_of_handlers(client: pgclaim.QueueClient, conn: psycopg.Connection[Any],
                              caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="pgclaim")
    seen: list[int] = []

    def handler(rec: Claimed) -> None:
        seen.append(rec.id)
        kind = rec.payload["kind"]
        if kind == "error":
            raise ValueError(f"bad record {rec.payload['n']}")
        if kind == "retry":
            raise Retry("later", after=0)
        if kind == "fatal":
            raise Fatal("never")

    kinds = ["ok"] * 20 + ["error"] * 3 + ["retry"] * 2 + ["fatal"] * 2
    ids = client.enqueue_many("q", [{"kind": k, "n": i} for i, k in enumerate(kinds)])
    stats = run_until(Worker(client, "q", handler, concurrency=3, batch_size=5,
                             poll_interval=0.2, reclaim_every=0.0),
                      finished(conn, len(kinds)), "every record finished")
    assert stats.completed == 20
    assert stats.failed == 3 + 2 + 2  # errors and retries out of attempts, fatal at once
    assert stats.retried == 3 * 2 + 2 * 2
    assert counts(conn) == {"completed": 20, "failed": 7}
    rows = dict(conn.execute(
        "select id, last_error from pgclaim.records where status = 'failed'").fetchall())
    assert rows[ids[20]] == "ValueError: bad record 20"
    assert rows[ids[25]] == "Fatal: never"
    assert collections.Counter(seen)[ids[25]] == 1 and collections.Counter(seen)[ids[23]] == 3
    assert conn.execute("select count(*) from pgclaim.workers").fetchone() == (0,)
    logged = [r for r in caplog.records if getattr(r, "worker_id", None)]
    assert logged and all(r.queue == "q" for r in logged)  # type: ignore[attr-defined]
    assert all(r.instance_id == pgclaim.instance_id() for r in logged)  # type: ignore


@pytest.mark.parametrize("log_payloads", [False, True])
def test_payloads_are_logged_only_on_request(client: pgclaim.QueueClient,
                                             conn: psycopg.Connection[Any],
                                             caplog: pytest.LogCaptureFixture,
                                             log_payloads: bool) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, every level
    marker = "card-4111-1111"

    def handler(rec: Claimed) -> None:
        raise KeyError(f"no field in {rec.payload}")  # an error text that quotes the payload

    rid = client.enqueue("q", {"card": marker}, max_attempts=1)
    stats = Worker(client, "q", handler, poll_interval=0.2, log_payloads=log_payloads).run(
        until_empty=True)
    assert stats.failed == 1
    failed = [r for r in caplog.records if "handler failed" in r.getMessage()]
    assert len(failed) == 1 and getattr(failed[0], "record_id", None) == rid
    assert f"on record {rid} (attempt 1): KeyError" in failed[0].getMessage()
    assert (marker in caplog.text) is log_payloads
    # the error text is kept with the record either way
    row = conn.execute("select last_error from pgclaim.records where id = %s", [rid]).fetchone()
    assert row is not None and marker in row[0]


def test_async_handler(client: pgclaim.QueueClient, conn: psycopg.Connection[Any]) -> None:
    running = 0
    peak = 0

    async def handler(rec: Claimed) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        if rec.payload == 0:
            # The first record waits (on the event loop) for a second handler to start:
            # handlers run at once, so one comes; a loop running them one by one would not.
            deadline = time.monotonic() + 30
            while peak < 2 and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        running -= 1
        if rec.payload == 3:
            raise RuntimeError("async boom")

    client.enqueue_many("q", list(range(12)))
    stats = run_until(Worker(client, "q", handler, concurrency=4, poll_interval=0.2),
                      finished(conn, 12), "every record finished")
    assert (stats.completed, stats.retried, stats.failed) == (11, 2, 1)  # 3 attempts
    assert counts(conn) == {"completed": 11, "failed": 1}
    assert 1 < peak <= 4


def test_listen_wakes_an_idle_worker(client: pgclaim.QueueClient,
                                     conn: psycopg.Connection[Any],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    done = threading.Event()
    worker = Worker(client, "q", lambda rec: done.set(), poll_interval=60.0)
    claims: list[tuple[bool, int]] = []
    real_claim = client.claim

    def noting_claim(*args: Any, **kwargs: Any) -> Any:
        listening = worker.listening
        rows = real_claim(*args, **kwargs)
        claims.append((listening, len(rows)))
        return rows

    monkeypatch.setattr(client, "claim", noting_claim)
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        # Idle: an empty claim made while listening, and no wake-up pending; from here only
        # a notification makes the worker claim before its 60 s poll.
        wait_for(lambda: any(lis and n == 0 for lis, n in claims)
                 and not worker._wake.is_set() and not worker._notified.is_set(),
                 what="the worker idle and listening")
        started = time.monotonic()
        client.enqueue("q", {"wake": True})
        assert done.wait(10), "the notification did not wake the worker"
        latency = time.monotonic() - started
        assert latency < 10  # a generous bound: far below the 60 s poll
    finally:
        worker.stop()
        thread.join(20)
    assert not thread.is_alive()
    assert counts(conn) == {"completed": 1}


def test_polling_fallback_without_listen(client: pgclaim.QueueClient,
                                         conn: psycopg.Connection[Any]) -> None:
    done = threading.Event()
    worker = Worker(client, "q", lambda rec: done.set(), poll_interval=0.3, listen=False)
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        time.sleep(0.5)
        client.enqueue("q", {})
        assert done.wait(10)
    finally:
        worker.stop()
        thread.join(20)
    assert counts(conn) == {"completed": 1}


def test_stop_releases_unstarted_and_deregisters(client: pgclaim.QueueClient, dsn: str,
                                                 conn: psycopg.Connection[Any]) -> None:
    started = threading.Event()
    worker: Worker

    def slow(rec: Claimed) -> None:
        started.set()
        hold_until_released(dsn, worker, 9)

    client.enqueue_many("q", list(range(10)))
    worker = Worker(client, "q", slow, concurrency=1, batch_size=10, grace=5)
    thread = threading.Thread(target=worker.run)
    thread.start()
    assert started.wait(10)
    assert conn.execute("select count(*) from pgclaim.worker_status").fetchone() == (1,)
    worker.stop()
    thread.join(20)
    stats = worker.stats
    # One batch of 10 claimed, one handler at a time: the running one finishes, the nine
    # not started are released.
    assert (stats.completed, stats.released) == (1, 9)
    assert counts(conn) == {"completed": stats.completed, "pending": stats.released}
    assert conn.execute("select max(attempt) from pgclaim.records where status = 'pending'"
                        ).fetchone() == (0,)
    assert conn.execute("select count(*) from pgclaim.workers").fetchone() == (0,)


def test_sigterm_in_process_stops_the_loop(client: pgclaim.QueueClient, dsn: str,
                                           conn: psycopg.Connection[Any]) -> None:
    client.enqueue_many("q", list(range(4)))
    first = threading.Event()
    worker: Worker

    def handler(rec: Claimed) -> None:  # busy until the signal and the release
        first.set()
        hold_until_released(dsn, worker, 3)

    def send_sigterm() -> None:
        first.wait(60)
        os.kill(os.getpid(), signal.SIGTERM)

    worker = Worker(client, "q", handler, concurrency=1, batch_size=4, grace=30)
    before = signal.getsignal(signal.SIGTERM)
    threading.Thread(target=send_sigterm).start()
    stats = worker.run()
    assert signal.getsignal(signal.SIGTERM) == before  # restored
    assert (stats.completed, stats.released) == (1, 3)
    assert counts(conn) == {"completed": 1, "pending": 3}


T0 = datetime(2030, 1, 1, tzinfo=UTC)


def test_heartbeat_keeps_a_long_handler_lease(client: pgclaim.QueueClient, dsn: str,
                                              conn: psycopg.Connection[Any]) -> None:
    """The database clock is frozen and moved by the handler, 0.6 lease at a time, to 2.4
    leases in all; after each move it waits for a heartbeat to extend the lease from the new
    time, then reclaims. Without heartbeats the lease would expire at the second move; no
    step depends on how fast the machine is."""
    freeze_clock(conn, T0)
    client.enqueue("q", {})
    reclaims: list[int] = []

    def long(rec: Claimed) -> None:
        with psycopg.connect(dsn, autocommit=True) as clock:
            for step in range(1, 5):
                now = T0 + timedelta(milliseconds=600 * step)
                freeze_clock(clock, now)
                wait_for(lambda now=now: clock.execute(
                    "select lease_until from pgclaim.records where id = %s", [rec.id]
                ).fetchone() == (now + timedelta(seconds=1),), what="a heartbeat")
                reclaims.append(client.reclaim_orphans())

    stats = Worker(client, "q", long, lease=1.0, heartbeat_every=0.2).run(until_empty=True)
    assert reclaims == [0, 0, 0, 0]
    assert (stats.completed, stats.lost, stats.handler_errors) == (1, 0, 0)


def test_reclaim_and_lost_leases(client: pgclaim.QueueClient, conn: psycopg.Connection[Any],
                                 caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="pgclaim")
    a, b = client.enqueue_many("q", [1, 2])
    client.claim("q", "ghost", 1, lease=0.01)  # a dead worker's record
    wait_for(lambda: conn.execute(
        "select bool_and(lease_until < pgclaim._now()) from pgclaim.records"
        " where status = 'running'").fetchone() == (True,), what="the ghost's lease to expire")

    def steal(rec: Claimed) -> None:  # the lease is taken back while the handler runs
        conn.execute("update pgclaim.records set lease_until = now() - interval '1s'"
                     " where id = %s", [rec.id])
        assert client.reclaim_orphans() >= 1

    stats = Worker(client, "q", steal, reclaim_every=0.0, poll_interval=0.2).run(
        until_empty=True)
    assert stats.lost >= 1
    assert any("no longer held" in r.getMessage() for r in caplog.records)
    assert a and b


def test_survives_database_outage(client: pgclaim.QueueClient, dsn: str, cluster_url: str,
                                  conn: psycopg.Connection[Any],
                                  caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="pgclaim")
    dbname = conn.info.dbname
    seen: list[int] = []
    lock = threading.Lock()
    gate = threading.Event()

    def handler(rec: Claimed) -> None:
        with lock:
            seen.append(rec.id)
            wait = len(seen) > 30
        if wait:  # the rest waits until the outage is over: records are held through it
            gate.wait(60)

    ids = client.enqueue_many("q", [{"n": i} for i in range(300)])
    worker = Worker(client, "q", handler, concurrency=2, batch_size=10, poll_interval=0.3,
                    heartbeat_every=0.3, reclaim_every=0.5,
                    backoff=RetryPolicy(attempts=10**6, base=0.1, cap=0.5, deadline=None))
    thread = threading.Thread(target=worker.run)
    thread.start()
    def noticed() -> list[str]:
        return [r.getMessage() for r in list(caplog.records) if r.name == "pgclaim"]

    try:
        wait_for(lambda: len(seen) > 30, what="first records")
        with psycopg.connect(cluster_url, autocommit=True) as admin:
            admin.execute(f'alter database "{dbname}" allow_connections false')
            admin.execute("select pg_terminate_backend(pid) from pg_stat_activity"
                          " where datname = %s and pid <> pg_backend_pid()", [dbname])
            # Down until the worker has noticed: its listener lost, a call retried.
            wait_for(lambda: any("listen connection lost" in m for m in noticed())
                     and any("retry" in m for m in noticed()), timeout=60,
                     what="the worker to notice the outage")
            down_seen = len(seen)
            admin.execute(f'alter database "{dbname}" allow_connections true')
        gate.set()
        assert down_seen < 300
        with psycopg.connect(dsn, autocommit=True) as check:
            wait_for(lambda: counts(check).get("completed", 0) == 300, timeout=60,
                     what="all records completed after the outage")
    finally:
        gate.set()
        worker.stop()
        thread.join(30)
    assert not thread.is_alive()
    assert any("listen connection lost" in m for m in noticed())
    assert any("retry" in m for m in noticed())
    repeated = [i for i, n in collections.Counter(seen).items() if n > 1]
    assert set(seen) == set(ids)
    assert repeated == []  # nothing processed twice: every lease held through the outage


# -- a real worker process --------------------------------------------------------------------

def worker_process(dsn: str, *args: str, handler: str = "record",
                   sleep: float = 0.3) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(HERE), "PGCLAIM_FIXTURE_DSN": dsn,
           "PGCLAIM_FIXTURE_SLEEP": str(sleep), "DATABASE_URL": dsn}
    return subprocess.Popen(
        [PGCLAIM, "worker", f"workers_fixture.handlers:{handler}", "--queue", "q",
         "--poll-interval", "0.5", *args],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def processed(conn: psycopg.Connection[Any]) -> collections.Counter[int]:
    rows = conn.execute("select record_id from public.processed").fetchall()
    return collections.Counter(r[0] for r in rows)


@pytest.mark.concurrent
def test_sigterm_mid_batch_loses_nothing(client: pgclaim.QueueClient, dsn: str,
                                         conn: psycopg.Connection[Any]) -> None:
    from workers_fixture.handlers import CREATE, OPEN_GATE
    conn.execute(CREATE)
    ids = client.enqueue_many("q", [{"n": i} for i in range(20)])
    proc = worker_process(dsn, "--concurrency", "2", "--batch-size", "6", "--grace", "60",
                          handler="gated")
    running = "select count(*) from pgclaim.records where status = 'running'"
    try:
        # Both handlers started and wait at the gate; the rest of the batch waits unstarted.
        wait_for(lambda: sum(processed(conn).values()) == 2, what="two handlers")
        proc.send_signal(signal.SIGTERM)
        wait_for(lambda: conn.execute(running).fetchone() == (2,),
                 what="the records not started released")
        conn.execute(OPEN_GATE)
        out, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, out
    assert "received SIGTERM" in out and "deregistered" in out
    seen = processed(conn)
    status = dict(conn.execute("select id, status::text from pgclaim.records").fetchall())
    assert "running" not in status.values()
    for rid in ids:
        if status[rid] == "completed":
            assert seen[rid] == 1
        else:  # released, never started: attempt not counted
            assert status[rid] == "pending" and seen[rid] == 0
    assert sum(seen.values()) == 2  # only the two handlers that were running
    assert conn.execute("select count(*) from pgclaim.workers").fetchone() == (0,)
    others = ("select count(*) from pg_stat_activity where datname = %s"
              " and application_name like 'pgclaim %%' and application_name <> %s")
    wait_for(lambda: conn.execute(others, [conn.info.dbname, "pgclaim " + pgclaim.instance_id()]
                                  ).fetchone() == (0,), timeout=5, what="worker connections gone")
    # the rest is processed by the next worker, once each
    Worker(client, "q", lambda rec: None, poll_interval=0.2).run(until_empty=True)
    assert counts(conn) == {"completed": 20}


@pytest.mark.concurrent
def test_sigkill_records_come_back_after_the_lease(client: pgclaim.QueueClient, dsn: str,
                                                   conn: psycopg.Connection[Any]) -> None:
    from workers_fixture.handlers import CREATE
    conn.execute(CREATE)
    ids = client.enqueue_many("q", [{"n": i} for i in range(12)])
    proc = worker_process(dsn, "--concurrency", "3", "--lease", "2s", "--heartbeat-every", "0.5",
                          handler="gated")
    try:
        # Three handlers wait at the gate (never opened): killed mid-handler.
        wait_for(lambda: sum(processed(conn).values()) == 3, what="three handlers")
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    finally:
        proc.kill()
    held = {r[0] for r in conn.execute(
        "select id from pgclaim.records where status = 'running'").fetchall()}
    assert set(processed(conn)) <= held, "the killed worker held the records it was handling"
    wait_for(lambda: conn.execute(
        "select count(*) from pgclaim.records where status = 'running'"
        " and lease_until >= pgclaim._now()").fetchone() == (0,),
        what="the leases to run out (by the database's clock)")
    assert client.reclaim_orphans() >= len(held)
    Worker(client, "q", lambda rec: None, poll_interval=0.2).run(until_empty=True)
    assert counts(conn) == {"completed": 12}
    seen = processed(conn)
    twice = {rid for rid, n in seen.items() if n > 1}
    assert twice <= held  # only records in flight at the kill may have run twice
    attempts = dict(conn.execute("select id, attempt from pgclaim.records").fetchall())
    assert all(attempts[rid] == 2 for rid in held)
    assert set(ids) >= set(seen)
