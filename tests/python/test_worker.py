"""The worker loop against a real database, in process and as a ``pgclaim worker`` process."""
from __future__ import annotations

import asyncio
import collections
import copy
import dataclasses
import json
import logging
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from pgdb import freeze_clock

import pgclaim
from pgclaim import Claimed, Fatal, Retry, RetryPolicy, Worker, WorkerStats
from pgclaim._signals import StopSignals
from pgclaim.worker import WorkerState

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
    rows = conn.execute("select status::text, count(*) from public.every_record group by 1")
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
                    "select count(*) from public.every_record where status = 'pending'"
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


def db_clock(conn: psycopg.Connection[Any]) -> datetime:
    """The database's clock (``pgclaim._now()`` reads ``clock_timestamp()``)."""
    row = conn.execute("select clock_timestamp()").fetchone()
    assert row is not None
    return row[0]  # type: ignore[no-any-return]


def status_of(conn: psycopg.Connection[Any], rid: int) -> str:
    row = conn.execute("select status::text from public.every_record where id = %s", [rid]).fetchone()
    assert row is not None
    return row[0]  # type: ignore[no-any-return]


class CountingClient(pgclaim.QueueClient):
    """A QueueClient that notes the claims and reports a worker sends through it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lock = threading.Lock()
        self.claims: list[tuple[float, float, int]] = []  # (sent, returned, records), monotonic
        self.reports: list[tuple[str, list[int]]] = []    # (method, record ids)

    def claim(self, queue: str, worker_id: str, batch_size: int = 100,
              lease: Any = None) -> list[Claimed]:
        sent = time.monotonic()
        records = super().claim(queue, worker_id, batch_size, lease)
        with self.lock:
            self.claims.append((sent, time.monotonic(), len(records)))
        return records

    def _note(self, method: str, ids: Sequence[Any]) -> None:
        with self.lock:
            self.reports.append((method, [i.id if isinstance(i, Claimed) else i for i in ids]))

    def complete(self, worker_id: str, ids: Any, lease_tokens: Any = None,
                 **kwargs: Any) -> int:
        self._note("complete", ids)
        return super().complete(worker_id, ids, lease_tokens, **kwargs)

    def complete_and_claim(self, worker_id: str, records: Sequence[Claimed], queue: str,
                           batch_size: int = 100, lease: Any = None
                           ) -> tuple[int, list[Claimed]]:
        self._note("complete", records)
        sent = time.monotonic()
        n, claimed = super().complete_and_claim(worker_id, records, queue, batch_size, lease)
        with self.lock:
            self.claims.append((sent, time.monotonic(), len(claimed)))
        return n, claimed

    def fail(self, worker_id: str, id: Any, error: str, **kwargs: Any) -> str:
        self._note("fail", [id])
        return super().fail(worker_id, id, error, **kwargs)

    def fail_batch(self, worker_id: str, records: Sequence[Claimed], errors: Sequence[str],
                   **kwargs: Any) -> dict[int, str]:
        self._note("fail_batch", records)
        return super().fail_batch(worker_id, records, errors, **kwargs)


@pytest.fixture
def counting(dsn: str) -> Iterator[CountingClient]:
    policy = RetryPolicy(attempts=3, base=0.05, cap=0.2, deadline=5)
    with CountingClient(dsn, retry=policy, pool_timeout=1.0) as c:
        yield c


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
        "select id, last_error from public.every_record where status = 'failed'").fetchall())
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
    row = conn.execute("select last_error from public.every_record where id = %s", [rid]).fetchone()
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


@pytest.mark.parametrize("concurrency", [2, 4, 7])
def test_handlers_that_wait_run_concurrency_at_once(client: pgclaim.QueueClient,
                                                   conn: psycopg.Connection[Any],
                                                   concurrency: int) -> None:
    """A batch starts on one thread; handlers that do not end at once are joined by the other
    threads: each handler here waits for ``concurrency`` handlers to run together. (One
    claim takes every record, so that each round of the barrier finds its records queued.)"""
    meet = threading.Barrier(concurrency)
    running = 0
    peak = 0
    lock = threading.Lock()

    def handler(rec: Claimed) -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        try:
            meet.wait(30)  # broken (BrokenBarrierError) if fewer run at once
        finally:
            with lock:
                running -= 1

    n = concurrency * 6
    client.enqueue_many("q", list(range(n)))
    stats = Worker(client, "q", handler, concurrency=concurrency, batch_size=n,
                   poll_interval=0.2).run(until_empty=True)
    assert (stats.completed, stats.handler_errors, peak) == (n, 0, concurrency)
    assert counts(conn) == {"completed": n}


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


def test_stop_ends_the_listener_at_once(client: pgclaim.QueueClient,
                                        conn: psycopg.Connection[Any]) -> None:
    """The listener waits on its connection for up to poll_interval (an hour here); stop
    wakes it, so that run returns with every thread of the worker ended."""
    worker = Worker(client, "q", lambda rec: None, poll_interval=3600.0, reclaim_every=3600)
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        wait_for(lambda: worker.listening and worker.state is WorkerState.WAITING,
                 what="an idle, listening worker")
    finally:
        worker.stop()
        thread.join(30)
    assert not thread.is_alive()
    assert [t.name for t in worker._threads if t.is_alive()] == []
    assert not worker.listening


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


def test_a_listener_no_notification_reaches_gives_way_to_polling(
        client: pgclaim.QueueClient, conn: psycopg.Connection[Any], cluster_url: str,
        caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """The listener checks that a notification sent through the client reaches it (here it
    listens in another database, as a connection through PgBouncer in transaction mode never
    sees one): when none does, it says so and ends, and the worker polls."""
    caplog.set_level(logging.WARNING, logger="pgclaim")
    monkeypatch.setattr(pgclaim.worker, "LISTEN_PROBE_WAIT", 0.5)
    done = threading.Event()
    worker = Worker(client, "q", lambda rec: done.set(), poll_interval=0.3,
                    listen_dsn=cluster_url)  # the maintenance database: not ours
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        wait_for(lambda: any("polling every 0.3s instead" in r.getMessage()
                             for r in list(caplog.records)), what="the listener to give up")
        assert not worker.listening
        client.enqueue("q", {})
        assert done.wait(10)
    finally:
        worker.stop()
        thread.join(20)
    assert counts(conn) == {"completed": 1}
    with pytest.raises(pgclaim.InvalidArgument):
        Worker(client, "q", lambda rec: None, listen_dsn="port=x")


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
    assert conn.execute("select max(attempt) from public.every_record where status = 'pending'"
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
                    "select lease_until from public.every_record where id = %s", [rec.id]
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
        "select bool_and(lease_until < pgclaim._now()) from public.every_record"
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

    worker = Worker(client, "q", handler, concurrency=2, batch_size=10, poll_interval=0.3,
                    heartbeat_every=0.3, reclaim_every=0.5,
                    backoff=RetryPolicy(attempts=10**6, base=0.1, cap=0.5, deadline=None))
    thread = threading.Thread(target=worker.run)
    thread.start()
    # idle first: the listener starts when the worker first waits with nothing held
    wait_for(lambda: worker.listening, what="the listener")
    ids = client.enqueue_many("q", [{"n": i} for i in range(300)])
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


# -- states ------------------------------------------------------------------------------------

def test_states_of_the_loop(client: pgclaim.QueueClient, conn: psycopg.Connection[Any]) -> None:
    started, release = threading.Event(), threading.Event()

    def handler(rec: Claimed) -> None:
        started.set()
        release.wait(30)

    worker = Worker(client, "q", handler, concurrency=1, batch_size=2, grace=30,
                    poll_interval=60.0)
    assert worker.state is WorkerState.STARTING
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        wait_for(lambda: worker.state is WorkerState.WAITING and worker.listening,
                 what="an idle worker")
        first, second = client.enqueue_many("q", [1, 2])  # the notification wakes it
        assert started.wait(10)
        wait_for(lambda: worker.state is WorkerState.RUNNING, what="running")
        worker.stop()
        # the record not started is released; the worker waits for the running handler
        wait_for(lambda: worker.state is WorkerState.DRAINING and status_of(conn, second)
                 == "pending", what="draining")
        assert status_of(conn, first) == "running"
        release.set()
    finally:
        release.set()
        worker.stop()
        thread.join(20)
    assert worker.state is WorkerState.STOPPED
    assert counts(conn) == {"completed": 1, "pending": 1}


def test_backs_off_and_never_exits_on_a_database_error(client: pgclaim.QueueClient,
                                                       conn: psycopg.Connection[Any]) -> None:
    client.drop_queue("q")  # every claim fails with QueueNotFound, an error no retry fixes
    done = threading.Event()
    worker = Worker(client, "q", lambda rec: done.set(), poll_interval=0.2,
                    backoff=RetryPolicy(attempts=10**6, base=0.3, cap=0.3, jitter="none",
                                        deadline=None))
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        wait_for(lambda: worker.state is WorkerState.BACKING_OFF and worker.stats.db_errors >= 3,
                 what="backing off")
        assert thread.is_alive()
        client.create_queue("q")
        client.enqueue("q", {})
        assert done.wait(20), "the worker did not come back once the queue was there"
    finally:
        worker.stop()
        thread.join(20)
    wait_for(lambda: counts(conn) == {"completed": 1}, what="the record completed")


def test_heartbeat_keeps_leases_while_draining(client: pgclaim.QueueClient,
                                               conn: psycopg.Connection[Any]) -> None:
    """A grace period longer than the lease: the running handler keeps its record."""
    client.alter_queue("q", lease=2)
    rid = client.enqueue("q", {})
    started = threading.Event()
    reclaims: list[int] = []

    def long(rec: Claimed) -> None:
        started.set()
        for _ in range(5):  # 3.5 s in all, well past the 2 s lease, while the worker drains
            time.sleep(0.7)
            reclaims.append(client.reclaim_orphans())

    worker = Worker(client, "q", long, heartbeat_every=0.2, grace=30)
    thread = threading.Thread(target=worker.run)
    thread.start()
    assert started.wait(10)
    worker.stop()
    thread.join(30)
    assert reclaims == [0] * 5
    assert (worker.stats.completed, worker.stats.lost) == (1, 0)
    assert status_of(conn, rid) == "completed"


# -- failures reported in batches -----------------------------------------------------------------

def test_failures_are_reported_in_one_batch(counting: CountingClient,
                                            conn: psycopg.Connection[Any]) -> None:
    counting.create_queue("b", lease=60, max_attempts=3, backoff_base=3600, backoff_max=7200)
    kinds = ["error"] * 4 + ["retry"] * 4 + ["fatal"] * 3 + ["ok"]
    ids = counting.enqueue_many("b", [{"kind": k} for k in kinds])

    def handler(rec: Claimed) -> None:
        kind = rec.payload["kind"]
        if kind == "error":
            raise ValueError("bad record")
        if kind == "retry":
            raise Retry("busy", after=timedelta(minutes=10))
        if kind == "fatal":
            raise Fatal("never")

    before = db_clock(conn)
    # One claim takes the twelve records; with report_delay an hour, their outcomes go out
    # once no handler runs any more: one complete and one fail_batch.
    stats = Worker(counting, "b", handler, concurrency=12, batch_size=12, report_delay=3600,
                   poll_interval=0.2).run(until_empty=True)
    after = db_clock(conn)
    assert len(counting.reports) == 2
    assert {m: sorted(i) for m, i in counting.reports} == {"complete": [ids[11]],
                                                           "fail_batch": ids[:11]}
    assert (stats.completed, stats.retried, stats.failed, stats.lost) == (1, 8, 3, 0)
    rows = {r[0]: r[1:] for r in conn.execute(
        "select id, status::text, attempt, last_error, run_at from public.every_record")}
    for rid in ids[:4]:  # the queue's backoff: 3600 s * [0.5, 1] for a first attempt
        status, attempt, error, run_at = rows[rid]
        assert (status, attempt, error) == ("pending", 1, "ValueError: bad record")
        assert before + timedelta(seconds=1800) <= run_at <= after + timedelta(seconds=3600)
    for rid in ids[4:8]:  # Retry(after=10 min), counted from the report
        status, attempt, error, run_at = rows[rid]
        assert (status, attempt, error) == ("pending", 1, "Retry: busy")
        assert before + timedelta(minutes=10) <= run_at <= after + timedelta(minutes=10)
    for rid in ids[8:11]:
        assert rows[rid][:3] == ("failed", 1, "Fatal: never")
    assert rows[ids[11]][0] == "completed"


@pytest.mark.parametrize("report_delay", [3600.0, 0.2])
def test_an_outcome_waits_for_running_handlers_at_most_report_delay(
        counting: CountingClient, conn: psycopg.Connection[Any], report_delay: float) -> None:
    counting.create_queue("b", lease=2, max_attempts=3, backoff_base=3600, backoff_max=3600)
    fast, slow = counting.enqueue_many("b", [{"kind": "fail"}, {"kind": "slow"}])
    failed, release = threading.Event(), threading.Event()

    def handler(rec: Claimed) -> None:
        if rec.payload["kind"] == "fail":
            failed.set()
            raise ValueError("no")
        release.wait(30)

    worker = Worker(counting, "b", handler, concurrency=2, batch_size=2, heartbeat_every=0.2,
                    report_delay=report_delay, poll_interval=0.2)
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        assert failed.wait(10)
        if report_delay > 60:
            # Past the 2 s lease: the failed record waits for its report in the heartbeat
            # set, so its lease is kept and nobody takes it back.
            time.sleep(3.0)
            assert counting.reclaim_orphans() == 0
            assert status_of(conn, fast) == "running" and counting.reports == []
        else:
            wait_for(lambda: status_of(conn, fast) == "pending", what="the failure reported")
            assert status_of(conn, slow) == "running"
            assert counting.reports == [("fail_batch", [fast])]
        release.set()
        wait_for(lambda: status_of(conn, slow) == "completed", what="the slow record")
    finally:
        release.set()
        worker.stop()
        thread.join(20)
    assert sorted(counting.reports) == [("complete", [slow]), ("fail_batch", [fast])]
    assert (worker.stats.completed, worker.stats.retried, worker.stats.lost) == (1, 1, 0)
    assert status_of(conn, fast) == "pending"


def test_heartbeats_and_reports_never_cover_the_same_record_at_once(
        dsn: str, conn: psycopg.Connection[Any]) -> None:
    """A heartbeat and a report lock their rows in different orders: run at once on the same
    records they could deadlock, and the deadlock detector's wait can outlast a short lease."""
    calls: list[tuple[str, float, float, set[int]]] = []  # (call, start, end, record ids)
    beaten: set[int] = set()

    class Timed(CountingClient):
        def _timed(self, call: str, ids: Sequence[Any], fn: Callable[[], Any]) -> Any:
            start = time.monotonic()
            time.sleep(0.05)  # widen each call, so that overlaps would show
            try:
                return fn()
            finally:
                ids = {i.id if isinstance(i, Claimed) else i for i in ids}
                with self.lock:
                    calls.append((call, start, time.monotonic(), ids))
                    if call == "heartbeat":
                        beaten.update(ids)

        def heartbeat(self, worker_id: str, ids: Sequence[int] | None = None,
                      **kwargs: Any) -> int:
            return self._timed("heartbeat", ids or [],  # type: ignore[no-any-return]
                               lambda: super(Timed, self).heartbeat(worker_id, ids, **kwargs))

        def complete(self, worker_id: str, ids: Any, lease_tokens: Any = None,
                     **kwargs: Any) -> int:
            return self._timed("complete", ids,  # type: ignore[no-any-return]
                               lambda: super(Timed, self).complete(worker_id, ids, lease_tokens,
                                                                   **kwargs))

        def complete_and_claim(self, worker_id: str, records: Sequence[Claimed], queue: str,
                               batch_size: int = 100, lease: Any = None
                               ) -> tuple[int, list[Claimed]]:
            return self._timed(  # type: ignore[no-any-return]
                "complete", records, lambda: super(Timed, self).complete_and_claim(
                    worker_id, records, queue, batch_size, lease))

        def fail_batch(self, worker_id: str, records: Sequence[Claimed], errors: Sequence[str],
                       **kwargs: Any) -> dict[int, str]:
            return self._timed("fail_batch", records,  # type: ignore[no-any-return]
                               lambda: super(Timed, self).fail_batch(worker_id, records, errors,
                                                                     **kwargs))

    def handler(rec: Claimed) -> None:
        # every record is heartbeaten while held, so heartbeats cover records awaiting reports
        wait_for(lambda: rec.id in beaten, timeout=10, what="a heartbeat")
        if rec.payload % 2:
            raise ValueError("odd")

    with Timed(dsn, pool_timeout=5.0) as client:
        client.create_queue("b", max_attempts=1)
        ids = client.enqueue_many("b", list(range(24)))
        stats = Worker(client, "b", handler, concurrency=4, heartbeat_every=0.02,
                       report_delay=0, poll_interval=0.2).run(until_empty=True)
    assert (stats.completed, stats.failed, stats.lost) == (12, 12, 0)
    beats = [c for c in calls if c[0] == "heartbeat"]
    reports = [c for c in calls if c[0] != "heartbeat"]
    assert {i for r in reports for i in r[3]} == set(ids)
    for _, b_start, b_end, b_ids in beats:
        for call, r_start, r_end, r_ids in reports:
            if b_ids & r_ids:
                assert b_end <= r_start or r_end <= b_start, (call, sorted(b_ids & r_ids))


def test_a_late_failure_report_counts_as_lost(client: pgclaim.QueueClient,
                                              conn: psycopg.Connection[Any],
                                              caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="pgclaim")
    rid = client.enqueue("q", {})

    def steal(rec: Claimed) -> None:  # the lease is taken back, then the handler fails
        if rec.attempt == 1:
            conn.execute("update pgclaim.records set lease_until = now() - interval '1s'"
                         " where id = %s", [rec.id])
            client.reclaim_orphans()  # (or the worker's own reclaim takes it back first)
            raise ValueError("too late")

    stats = Worker(client, "q", steal, poll_interval=0.2).run(until_empty=True)
    assert (stats.lost, stats.retried, stats.failed) == (1, 0, 0)
    assert any("failed record(s) were no longer held" in r.getMessage() for r in caplog.records)
    row = conn.execute("select last_error from public.every_record where id = %s", [rid]).fetchone()
    assert row is not None and "too late" not in (row[0] or "")  # the report changed nothing


def test_retry_after_is_honoured(client: pgclaim.QueueClient,
                                 conn: psycopg.Connection[Any]) -> None:
    after = 0.5
    ended: list[float] = []
    started: list[float] = []

    def handler(rec: Claimed) -> None:
        started.append(time.time())
        if rec.attempt == 1:
            ended.append(time.time())
            raise Retry("later", after=after)

    rid = client.enqueue("q", {})
    worker = Worker(client, "q", handler, poll_interval=0.05, report_delay=0)
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        wait_for(lambda: status_of(conn, rid) == "completed", what="the second attempt")
    finally:
        worker.stop()
        thread.join(20)
    # The failure is reported after the first attempt ended; the record is due `after` later,
    # and a claim takes only records that are due.
    assert len(started) == 2 and started[1] - ended[0] >= after
    assert (worker.stats.retried, worker.stats.completed) == (1, 1)
    with pytest.raises(ValueError, match="negative"):
        Retry(after=-1)


# -- payloads -------------------------------------------------------------------------------------

PAYLOADS: list[Any] = [
    {"to": "a@example.com", "n": 1}, {"nested": {"list": [1, 2.5, None, True, "é€😀"]}},
    [], {}, "text", 0, -17, 2**63 + 5, 1.25e-8, True, False, None, {"\tx": "a\nb\u001f"},
    {"big": "x" * 100_000},
]


def stored_payloads(conn: psycopg.Connection[Any]) -> dict[int, Any]:
    """The payloads as the database holds them, decoded here from their JSON text."""
    rows = conn.execute("select id, payload::text from public.every_record").fetchall()
    return {rid: json.loads(text) for rid, text in rows}


def test_payloads_seen_by_handlers_equal_the_stored_ones(client: pgclaim.QueueClient,
                                                         conn: psycopg.Connection[Any]) -> None:
    """Payloads reach handlers as JSON text, decoded on first access: what a handler reads is
    what was stored, whichever thread reads it first and however often."""
    ids = client.enqueue_many("q", PAYLOADS)
    seen: dict[int, list[Any]] = {}
    lock = threading.Lock()

    def handler(rec: Claimed) -> None:
        values = [rec.payload, rec.payload]  # the second read finds the decoded value
        with lock:
            seen[rec.id] = values

    stats = Worker(client, "q", handler, concurrency=3, batch_size=5, poll_interval=0.2).run(
        until_empty=True)
    assert stats.completed == len(PAYLOADS)
    stored = stored_payloads(conn)
    assert set(seen) == set(ids)
    for rid, (first, second) in seen.items():
        assert first == stored[rid] and second is first
    assert [stored[rid] for rid in ids] == PAYLOADS


def test_claimed_records_decode_their_payload_once(client: pgclaim.QueueClient,
                                                   conn: psycopg.Connection[Any]) -> None:
    ids = client.enqueue_many("q", PAYLOADS)
    records = client.claim("q", "w", len(PAYLOADS))
    stored = stored_payloads(conn)
    assert sorted(r.id for r in records) == sorted(ids)
    for rec in records:
        assert dataclasses.asdict(rec)["payload"] == stored[rec.id]  # decoded on first access
    again = client.claim("q", "w", 1)  # nothing left
    assert again == []
    rec = records[1]
    # a record behaves as a frozen dataclass whether its payload was read yet or not
    fresh = client.enqueue("q", {"k": [1, 2]})
    (lazy,) = client.claim("q", "w", 1)
    assert lazy.id == fresh
    for clone in (copy.copy(lazy), copy.deepcopy(lazy), pickle.loads(pickle.dumps(lazy)),
                  dataclasses.replace(lazy)):
        assert clone == lazy and clone.payload == {"k": [1, 2]}
    with pytest.raises(dataclasses.FrozenInstanceError):
        rec.payload = "changed"  # type: ignore[misc]
    built = Claimed(**{f.name: getattr(rec, f.name) for f in dataclasses.fields(Claimed)})
    assert built == rec and built.payload == stored[rec.id]
    assert client.complete("w", [*records, lazy]) == len(records) + 1


@pytest.mark.parametrize("timezone", ["UTC", "Asia/Kathmandu", "America/St_Johns"])
def test_claimed_times_are_those_psycopg_loads(dsn: str, timezone: str) -> None:
    """enqueued_at, run_at and lease_until reach a record as text and are decoded on first
    access by the connection's own loader: the session's time zone, exactly the values a
    plain query returns."""
    with psycopg.connect(dsn, autocommit=True) as own:
        own.execute(f"set timezone = '{timezone}'")
        client = pgclaim.QueueClient(own)
        client.create_queue("q")
        client.enqueue_many("q", [1, 2])
        client.enqueue("q", 3, run_at=datetime(2001, 2, 3, 4, 5, 6, 789, tzinfo=UTC))
        own.execute("update pgclaim.records set run_at = now() - interval '1 hour 7 us'"
                    " where payload = '2'")
        records = client.claim("q", "w", 10)
        rows = {r[0]: r[1:] for r in own.execute(
            "select id, enqueued_at, run_at, lease_until from public.every_record")}
        assert len(records) == 3
        for rec in records:
            expected = rows[rec.id]
            assert (rec.enqueued_at, rec.run_at, rec.lease_until) == expected
            assert [t.tzinfo for t in (rec.enqueued_at, rec.run_at, rec.lease_until)] == [
                t.tzinfo for t in expected]
            assert str(rec.run_at.tzinfo) == timezone or timezone == "UTC"


def test_claimed_times_are_decoded_on_access_by_the_connection_loader(dsn: str) -> None:
    from psycopg.types.datetime import TimestamptzLoader

    loaded: list[bytes] = []

    class Counting(TimestamptzLoader):
        def load(self, data: Any) -> Any:
            loaded.append(bytes(data))
            return super().load(data)

    with psycopg.connect(dsn, autocommit=True) as own:
        own.adapters.register_loader("timestamptz", Counting)
        client = pgclaim.QueueClient(own)
        client.create_queue("q")
        client.enqueue_many("q", [1, 2])
        first, second = client.claim("q", "w", 10)
        assert loaded == []
        assert first.run_at <= first.lease_until and len(loaded) == 2
        assert first.enqueued_at == first.run_at and len(loaded) == 3
        assert first.run_at is first.run_at and len(loaded) == 3  # decoded once
        assert second.lease_token and len(loaded) == 3


def test_a_connection_json_loader_decodes_claimed_payloads(
        dsn: str, conn: psycopg.Connection[Any]) -> None:
    """psycopg's set_json_loads applies to claimed payloads, decoded lazily or not."""
    from psycopg.types.json import set_json_loads

    calls: list[bytes] = []

    def loads(data: bytes) -> Any:
        calls.append(data)
        return ("custom", json.loads(data))

    with psycopg.connect(dsn, autocommit=True) as own:
        set_json_loads(loads, own)
        client = pgclaim.QueueClient(own)
        client.create_queue("q")
        client.enqueue_many("q", [{"a": 1}, [2]])
        records = client.claim("q", "w", 10)
        assert calls == []  # nothing decoded yet
        assert [r.payload for r in records] == [("custom", {"a": 1}), ("custom", [2])]
        assert [r.payload for r in records] == [("custom", {"a": 1}), ("custom", [2])]
        assert len(calls) == 2 and all(isinstance(c, bytes) for c in calls)


def test_reports_take_ids_in_every_form(client: pgclaim.QueueClient,
                                        conn: psycopg.Connection[Any]) -> None:
    """Ids and lease tokens go to the server as one bigint[] literal when they are all ints
    (as the worker's reports pass them), else as psycopg dumps them: same results."""
    ids = client.enqueue_many("q", list(range(6)))
    records = client.claim("q", "w", 6)
    by_id = {r.id: r for r in records}
    a, b, c, d, e, f = (by_id[i] for i in ids)
    assert client.heartbeat("w", (r.id for r in records)) == 6  # any iterable
    assert client.extend_lease("w", (a.id,), lease=30, lease_tokens=(a.lease_token,)) == 1
    assert client.complete("w", [a.id, b.id], [a.lease_token, b.lease_token]) == 2
    assert client.complete("w", [c]) == 1
    assert client.release("w", [d.id], [d.lease_token]) == 1
    assert client.complete("w", [e.id], [e.lease_token + 1]) == 0  # another claim's token
    assert client.fail_batch("w", [e, f], ["x", "y"], fatal=[True, False]) == {
        e.id: "failed", f.id: "pending"}
    assert client.complete("w", []) == 0
    with pytest.raises(pgclaim.InvalidArgument) as err:
        client.complete("w", [None], [1])  # type: ignore[list-item]
    assert err.value.sqlstate == "22004"
    assert counts(conn) == {"completed": 3, "pending": 2, "failed": 1}


# -- wake-ups -------------------------------------------------------------------------------------

def test_a_notification_after_real_work_is_not_held_back(counting: CountingClient,
                                                         conn: psycopg.Connection[Any]) -> None:
    """min_wake_interval applies only after a claim that found nothing."""
    counting.create_queue("b")
    release = threading.Event()
    seen: list[int] = []

    def handler(rec: Claimed) -> None:
        seen.append(rec.id)
        if rec.payload["block"]:
            release.wait(30)

    # 3 handlers, claims of 4: the first claim takes 3 records (fewer than asked, so the next
    # claim waits for the hour-long poll timer or a notification) and leaves no room
    blocked = counting.enqueue_many("b", [{"block": True}] * 3)
    worker = Worker(counting, "b", handler, concurrency=3, batch_size=4, poll_interval=3600,
                    min_wake_interval=3600, reclaim_every=3600)
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        wait_for(lambda: len(seen) == 3 and worker.listening, what="three blocked handlers")
        late = counting.enqueue("b", {"block": False})
        release.set()  # room again: the notification is taken at once, not an hour later
        wait_for(lambda: late in seen, what="the record enqueued later")
    finally:
        release.set()
        worker.stop()
        thread.join(20)
    assert [n for _, _, n in counting.claims][:2] == [3, 1]
    assert sorted(seen) == sorted([*blocked, late])


def test_one_empty_claim_after_records_does_not_hold_back_notifications(
        counting: CountingClient, conn: psycopg.Connection[Any]) -> None:
    """An empty claim right after one that found records (the record went to another worker,
    or the notification was that of a record already taken) leaves the next notification
    free to prompt a claim; a second empty claim in a row holds notifications back for
    min_wake_interval (an hour here)."""
    counting.create_queue("b")
    seen: list[int] = []
    first = counting.enqueue("b", {})
    worker = Worker(counting, "b", lambda rec: seen.append(rec.id), poll_interval=3600,
                    min_wake_interval=3600, reclaim_every=3600)
    thread = threading.Thread(target=worker.run)

    def idle() -> bool:
        return (worker.state is WorkerState.WAITING and not worker._notified.is_set()
                and not worker._wake.is_set())

    def one_more_claim(action: Callable[[], Any]) -> Any:
        before = len(counting.claims)
        result = action()
        wait_for(lambda: len(counting.claims) == before + 1 and idle(), what="one more claim")
        return result

    thread.start()
    try:
        # The first claim takes the record; the listener's first look may add an empty claim.
        wait_for(lambda: seen == [first] and worker.listening and idle(), what="the first record")
        second = one_more_claim(lambda: counting.enqueue("b", {}))  # last claim found a record
        wait_for(lambda: second in seen, what="the second record")
        start = len(counting.claims)
        one_more_claim(lambda: conn.execute("notify pgclaim_b"))  # no record: an empty claim
        third = one_more_claim(lambda: counting.enqueue("b", {}))  # taken at once all the same
        wait_for(lambda: third in seen, what="the record enqueued after the empty claim")
        one_more_claim(lambda: conn.execute("notify pgclaim_b"))
        one_more_claim(lambda: conn.execute("notify pgclaim_b"))  # a second empty claim in a row
        fourth = counting.enqueue("b", {})  # held back: no claim for an hour
        time.sleep(0.5)
        assert len(counting.claims) == start + 4 and fourth not in seen
    finally:
        worker.stop()
        thread.join(20)
    assert [n for _, _, n in counting.claims[start:]] == [0, 1, 0, 0]
    assert status_of(conn, fourth) == "pending"


@pytest.mark.concurrent
def test_a_flood_of_notifications_costs_an_idle_worker_little(
        dsn: str, conn: psycopg.Connection[Any]) -> None:
    """Two idle workers under a NOTIFY flood: each claims at most once per min_wake_interval.

    Run with ``-s`` to see the measured figures (docs/security.md quotes them).
    """
    flood_for, min_wake = 2.0, 0.05
    clients = [CountingClient(dsn, pool_timeout=5.0) for _ in range(2)]
    clients[0].create_queue("q")
    workers = [Worker(c, "q", lambda rec: None, worker_id=f"idle-{i}", poll_interval=3600,
                      reclaim_every=3600, min_wake_interval=min_wake)
               for i, c in enumerate(clients)]
    threads = [threading.Thread(target=w.run) for w in workers]
    for t in threads:
        t.start()
    stop_flood = threading.Event()
    sent = 0

    def flood() -> None:
        nonlocal sent
        with psycopg.connect(dsn, autocommit=True) as c:
            while not stop_flood.is_set():
                c.execute("notify pgclaim_q")
                sent += 1

    flooder = threading.Thread(target=flood)
    try:
        wait_for(lambda: all(w.listening and w.state is WorkerState.WAITING for w in workers),
                 what="idle workers")
        start = time.monotonic()
        flooder.start()
        # the flood does wake them ...
        wait_for(lambda: all(sum(1 for s, _, _ in c.claims if s >= start) >= 2 for c in clients),
                 what="claims prompted by the flood")
        time.sleep(max(0.0, start + flood_for - time.monotonic()))
        stop_flood.set()
        flooder.join(10)
        end = time.monotonic()
    finally:
        stop_flood.set()
        for w in workers:
            w.stop()
        for t in threads:
            t.join(20)
        for c in clients:
            c.close()
    window = end - start
    rates = []
    for c in clients:
        claims = [(s, r, n) for s, r, n in c.claims if start <= s <= end]
        assert all(n == 0 for _, _, n in claims)
        # ... but no claim starts sooner than min_wake_interval after an empty one ended (each
        # followed another empty claim: there is no record to find)
        gaps = [b[0] - a[1] for a, b in zip(c.claims, c.claims[1:], strict=False) if a[2] == 0]
        assert min(gaps) >= min_wake, gaps
        # hence at most one claim per min_wake_interval in the window
        assert len(claims) <= window / min_wake + 1
        rates.append(len(claims) / window)
    print(f"\nflood: {sent / window:,.0f} NOTIFY/s for {window:.1f} s; claims per idle worker: "
          + ", ".join(f"{r:.1f}/s" for r in rates) + f" (min_wake_interval {min_wake} s)")


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
    running = "select count(*) from public.every_record where status = 'running'"
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
    status = dict(conn.execute("select id, status::text from public.every_record").fetchall())
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
        "select id from public.every_record where status = 'running'").fetchall()}
    assert set(processed(conn)) <= held, "the killed worker held the records it was handling"
    wait_for(lambda: conn.execute(
        "select count(*) from public.every_record where status = 'running'"
        " and lease_until >= pgclaim._now()").fetchone() == (0,),
        what="the leases to run out (by the database's clock)")
    assert client.reclaim_orphans() >= len(held)
    Worker(client, "q", lambda rec: None, poll_interval=0.2).run(until_empty=True)
    assert counts(conn) == {"completed": 12}
    seen = processed(conn)
    twice = {rid for rid, n in seen.items() if n > 1}
    assert twice <= held  # only records in flight at the kill may have run twice
    attempts = dict(conn.execute("select id, attempt from public.every_record").fetchall())
    assert all(attempts[rid] == 2 for rid in held)
    assert set(ids) >= set(seen)


class Output:
    """Reads a process's output as it comes, so a test can wait for a line."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        assert proc.stdout is not None
        stream = proc.stdout
        self.thread = threading.Thread(target=lambda: self.lines.extend(iter(stream.readline, "")),
                                       daemon=True)
        self.thread.start()

    def count(self, text: str) -> int:
        return sum(text in line for line in list(self.lines))

    def text(self) -> str:
        self.thread.join(10)
        return "".join(self.lines)


@pytest.mark.concurrent
def test_second_sigterm_stops_now(client: pgclaim.QueueClient, dsn: str,
                                  conn: psycopg.Connection[Any]) -> None:
    from workers_fixture.handlers import CREATE
    conn.execute(CREATE)
    ids = client.enqueue_many("q", [{"n": i, "sleep": 600} for i in range(4)])
    proc = worker_process(dsn, "--concurrency", "2", "--batch-size", "4", "--grace", "600")
    out = Output(proc)
    try:
        wait_for(lambda: sum(processed(conn).values()) == 2, what="two running handlers")
        proc.send_signal(signal.SIGTERM)
        wait_for(lambda: out.count("waiting up to 600.0s for 2 running handler(s)") == 1,
                 what="the grace period")
        proc.send_signal(signal.SIGTERM)  # the handlers would run for ten more minutes
        proc.wait(timeout=60)
    finally:
        proc.kill()
    text = out.text()
    assert proc.returncode == 0, text
    assert "received SIGTERM again" in text and "deregistered (released 2)" in text, text
    # nothing is running, nothing is lost: every record is pending, attempt not counted
    rows = conn.execute("select id, status::text, attempt from public.every_record order by id")
    assert rows.fetchall() == [(i, "pending", 0) for i in ids]
    assert conn.execute("select count(*) from pgclaim.workers").fetchone() == (0,)
    started = set(processed(conn))
    assert len(started) == 2 and started <= set(ids)
    Worker(client, "q", lambda rec: None, poll_interval=0.2).run(until_empty=True)
    assert counts(conn) == {"completed": 4}


def test_stop_signals_first_graceful_then_now() -> None:
    calls: list[tuple[str, str]] = []
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    with StopSignals(lambda name: calls.append(("graceful", name)),
                     lambda name: calls.append(("now", name))) as signals:
        assert signals.installed
        for n, sig in enumerate((signal.SIGTERM, signal.SIGINT, signal.SIGTERM), start=1):
            os.kill(os.getpid(), sig)
            wait_for(lambda n=n: len(calls) == n, what=f"signal {n}")  # type: ignore[misc]
    assert calls == [("graceful", "SIGTERM"), ("now", "SIGINT"), ("now", "SIGTERM")]
    assert signals.received == 3
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before
    # disabled, or outside the main thread: nothing is installed
    with StopSignals(print, print, enabled=False) as off:
        assert not off.installed and signal.getsignal(signal.SIGTERM) == before[0]
    elsewhere: list[bool] = []

    def other_thread() -> None:
        with StopSignals(print, print) as s:
            elsewhere.append(s.installed)

    t = threading.Thread(target=other_thread)
    t.start()
    t.join()
    assert elsewhere == [False]


def test_rate_limited_queue_is_drained_at_its_rate_not_at_the_poll_interval(
        client: pgclaim.QueueClient, conn: psycopg.Connection[Any]) -> None:
    """A worker of a rate-limited queue that gets fewer records than it asked for waits until
    ``next_eligible`` (the next token), not ``poll_interval``: with a poll interval of 10
    minutes and no notifications, 6 records at 20 per second (burst 1) are done within the
    deadline only if it does (the deadline bounds a hang, not the speed)."""
    client.create_queue("rl", rate=20, burst=1)
    client.enqueue_many("rl", list(range(6)))
    done = threading.Semaphore(0)
    worker = Worker(client, "rl", lambda rec: done.release(), poll_interval=600,
                    listen=False)
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        for n in range(6):
            assert done.acquire(timeout=60), f"record {n + 1} waited for the poll interval"
    finally:
        worker.stop()
        thread.join(20)
    assert counts(conn) == {"completed": 6}
