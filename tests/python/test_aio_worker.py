"""AsyncWorker against a real database, inside an event loop of the test's own, as
test_worker.py tests Worker: every record done exactly once (a ledger), Retry and Fatal, a
graceful stop that releases what did not start, stop(now=True) and cancellation, a lease
taken back under a handler, heartbeats that keep a long handler's lease, wake-ups by
LISTEN and the fallback to polling; and the asyncio example of docs/python.md, run as
written."""
from __future__ import annotations

import asyncio
import collections
import logging
import re
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from pgdb import ROOT, freeze_clock

import pgclaim
from pgclaim import AsyncQueueClient, AsyncWorker, Claimed, Fatal, Retry, RetryPolicy
from pgclaim.worker import WorkerState

Body = Callable[[AsyncQueueClient], Awaitable[None]]


def run(dsn: str, body: Body) -> None:
    async def main() -> None:
        policy = RetryPolicy(attempts=3, base=0.05, cap=0.2, deadline=5)
        async with AsyncQueueClient(dsn, retry=policy, pool_timeout=1.0) as c:
            await c.create_queue("q", lease=60, max_attempts=3, backoff_base=0.001,
                                 backoff_max=0.01)
            await body(c)
    asyncio.run(main())


def worker(client: AsyncQueueClient, handler: Any, **kw: Any) -> AsyncWorker:
    kw.setdefault("poll_interval", 0.2)
    return AsyncWorker(client, "q", handler, install_signals=False, **kw)


def counts(conn: psycopg.Connection[Any]) -> dict[str, int]:
    rows = conn.execute("select status::text, count(*) from public.every_record group by 1")
    return dict(rows.fetchall())


async def wait_for(cond: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


def finished(conn: psycopg.Connection[Any], n: int) -> Callable[[], bool]:
    return lambda: sum(v for k, v in counts(conn).items() if k in ("completed", "failed")) == n


async def run_until(w: AsyncWorker, cond: Callable[[], bool], what: str) -> pgclaim.WorkerStats:
    """Runs ``w`` as a task until ``cond()`` holds, then stops it; returns its stats."""
    task = asyncio.create_task(w.run())
    try:
        await wait_for(cond, what)
    finally:
        w.stop()
        stats = await asyncio.wait_for(task, 30)
    assert w.state is WorkerState.STOPPED
    return stats


def test_every_record_exactly_once(dsn: str, conn: psycopg.Connection[Any]) -> None:
    ledger: collections.Counter[int] = collections.Counter()
    running = peak = 0

    async def handler(rec: Claimed) -> None:
        nonlocal running, peak
        ledger[rec.payload["n"]] += 1
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.002 * (rec.payload["n"] % 3))
        running -= 1

    async def body(c: AsyncQueueClient) -> None:
        n = 600
        await c.enqueue_many("q", [{"n": i} for i in range(n // 2)])
        w = worker(c, handler, concurrency=5, batch_size=20, report_delay=0.01)
        task = asyncio.create_task(w.run())
        await wait_for(lambda: w.listening, "the listener")
        # records that arrive while it runs: claimed when their notification comes
        await c.enqueue_many("q", [{"n": i} for i in range(n // 2, n)])
        await wait_for(finished(conn, n), "every record")
        w.stop()
        stats = await asyncio.wait_for(task, 30)
        assert (stats.claimed, stats.completed, stats.lost, stats.db_errors) == (n, n, 0, 0)
        assert sorted(ledger) == list(range(n)) and set(ledger.values()) == {1}
        assert 1 < peak <= 5
        assert counts(conn) == {"completed": n}
        assert conn.execute("select count(*) from pgclaim.workers").fetchone() == (0,)

    run(dsn, body)


def test_outcomes_of_handlers(dsn: str, conn: psycopg.Connection[Any],
                              caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="pgclaim")
    seen: list[int] = []

    async def handler(rec: Claimed) -> None:
        seen.append(rec.id)
        kind = rec.payload["kind"]
        if kind == "error":
            raise ValueError(f"bad record {rec.payload['n']}")
        if kind == "retry":
            raise Retry("later", after=0)
        if kind == "fatal":
            raise Fatal("never")

    async def body(c: AsyncQueueClient) -> None:
        kinds = ["ok"] * 20 + ["error"] * 3 + ["retry"] * 2 + ["fatal"] * 2
        ids = await c.enqueue_many("q", [{"kind": k, "n": i} for i, k in enumerate(kinds)])
        stats = await run_until(worker(c, handler, concurrency=3, batch_size=5,
                                       reclaim_every=0.0),
                                finished(conn, len(kinds)), "every record finished")
        assert stats.completed == 20
        assert stats.failed == 3 + 2 + 2  # errors and retries out of attempts, fatal at once
        assert stats.retried == 3 * 2 + 2 * 2
        assert counts(conn) == {"completed": 20, "failed": 7}
        rows = dict(conn.execute(
            "select id, last_error from public.every_record where status = 'failed'").fetchall())
        assert rows[ids[20]] == "ValueError: bad record 20"
        assert rows[ids[25]] == "Fatal: never"
        assert collections.Counter(seen)[ids[25]] == 1
        assert collections.Counter(seen)[ids[23]] == 3
    run(dsn, body)
    failed = [r for r in caplog.records if "handler failed" in r.getMessage()]
    assert failed and all(r.queue == "q" for r in failed)  # type: ignore[attr-defined]


def test_until_empty_and_a_plain_function_handler(dsn: str,
                                                  conn: psycopg.Connection[Any]) -> None:
    async def body(c: AsyncQueueClient) -> None:
        await c.enqueue_many("q", list(range(7)))
        done: list[int] = []
        stats = await worker(c, lambda rec: done.append(rec.payload)).run(until_empty=True)
        assert (stats.completed, sorted(done)) == (7, list(range(7)))
    run(dsn, body)
    assert counts(conn) == {"completed": 7}


def test_stop_releases_unstarted_and_deregisters(dsn: str,
                                                 conn: psycopg.Connection[Any]) -> None:
    async def body(c: AsyncQueueClient) -> None:
        started = asyncio.Event()
        w: AsyncWorker

        async def slow(rec: Claimed) -> None:
            started.set()
            await wait_for(lambda: w.stopping, "stop")
            await asyncio.sleep(0.05)

        await c.enqueue_many("q", list(range(10)))
        w = worker(c, slow, concurrency=1, batch_size=10, grace=5)
        task = asyncio.create_task(w.run())
        await asyncio.wait_for(started.wait(), 10)
        assert conn.execute("select count(*) from pgclaim.worker_status").fetchone() == (1,)
        w.stop()
        stats = await asyncio.wait_for(task, 20)
        # one batch of 10, one handler at a time: the running one finishes, the nine not
        # started are released (attempt given back)
        assert (stats.completed, stats.released) == (1, 9)
        assert counts(conn) == {"completed": 1, "pending": 9}
        assert conn.execute("select max(attempt) from public.every_record"
                            " where status = 'pending'").fetchone() == (0,)
        assert conn.execute("select count(*) from pgclaim.workers").fetchone() == (0,)
    run(dsn, body)


def test_stop_from_another_thread(dsn: str, conn: psycopg.Connection[Any]) -> None:
    async def body(c: AsyncQueueClient) -> None:
        w = worker(c, lambda rec: None, poll_interval=3600.0, reclaim_every=3600)
        task = asyncio.create_task(w.run())
        await wait_for(lambda: w.listening and w.state is WorkerState.WAITING,
                       "an idle, listening worker")
        threading.Thread(target=w.stop).start()
        await asyncio.wait_for(task, 20)  # the listener waits an hour otherwise
        assert not w.listening
    run(dsn, body)
    assert conn.execute("select count(*) from pgclaim.workers").fetchone() == (0,)


@pytest.mark.parametrize("how", ["stop now", "cancel"])
def test_stop_now_and_cancellation_release_running_records(
        dsn: str, conn: psycopg.Connection[Any], how: str) -> None:
    """Handlers that would run for an hour: stop(now=True) or cancelling the task cancels
    them and deregisters, which releases their records (attempt given back)."""
    cancelled: list[int] = []

    async def forever(rec: Claimed) -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.append(rec.id)
            raise

    async def body(c: AsyncQueueClient) -> None:
        await c.enqueue_many("q", list(range(3)))
        w = worker(c, forever, concurrency=3, grace=3600)
        task = asyncio.create_task(w.run())
        await wait_for(lambda: counts(conn) == {"running": 3} and len(w._records) == 3,
                       "three running handlers")
        if how == "stop now":
            w.stop(now=True)
            stats = await asyncio.wait_for(task, 20)
            assert (stats.completed, stats.released, stats.abandoned) == (0, 3, 3)
        else:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await asyncio.wait_for(task, 20)
        assert len(cancelled) == 3
        assert counts(conn) == {"pending": 3}
        assert conn.execute("select count(*) from pgclaim.workers").fetchone() == (0,)
    run(dsn, body)


def test_a_lease_taken_back_under_a_handler_counts_as_lost(
        dsn: str, conn: psycopg.Connection[Any], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="pgclaim")

    async def body(c: AsyncQueueClient) -> None:
        await c.enqueue_many("q", [1, 2])

        async def steal(rec: Claimed) -> None:  # its lease expires and is taken back
            conn.execute("update pgclaim.records set lease_until = now() - interval '1s'"
                         " where id = %s", [rec.id])
            assert await c.reclaim_orphans() >= 1
            if rec.payload == 2:
                raise ValueError("too late anyway")

        stats = await worker(c, steal, concurrency=1, batch_size=2, reclaim_every=3600).run(
            until_empty=True)
        assert stats.lost >= 2 and stats.completed + stats.retried + stats.failed == 0
    run(dsn, body)
    assert any("no longer held" in r.getMessage() for r in caplog.records)


T0 = datetime(2030, 1, 1, tzinfo=UTC)


def test_heartbeat_keeps_a_long_handler_lease(dsn: str, conn: psycopg.Connection[Any]) -> None:
    """The frozen database clock moves 0.6 lease at a time, 2.4 leases in all; after each
    move the handler waits for a heartbeat to extend the lease from the new time, then
    reclaims: nothing is taken back."""
    freeze_clock(conn, T0)
    reclaims: list[int] = []

    async def body(c: AsyncQueueClient) -> None:
        await c.enqueue("q", {})

        async def long(rec: Claimed) -> None:
            with psycopg.connect(dsn, autocommit=True) as clock:
                for step in range(1, 5):
                    now = T0 + timedelta(milliseconds=600 * step)
                    freeze_clock(clock, now)
                    await wait_for(lambda now=now: clock.execute(  # type: ignore[misc]
                        "select lease_until from public.every_record where id = %s", [rec.id]
                    ).fetchone() == (now + timedelta(seconds=1),), "a heartbeat")
                    reclaims.append(await c.reclaim_orphans())

        stats = await worker(c, long, lease=1.0, heartbeat_every=0.2).run(until_empty=True)
        assert (stats.completed, stats.lost, stats.handler_errors) == (1, 0, 0)
    run(dsn, body)
    assert reclaims == [0, 0, 0, 0]


def test_a_listener_no_notification_reaches_gives_way_to_polling(
        dsn: str, conn: psycopg.Connection[Any], cluster_url: str,
        caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """Listening in another database (as through PgBouncer in transaction mode), the probe
    never arrives: the listener says so and ends, and the worker polls."""
    caplog.set_level(logging.WARNING, logger="pgclaim")
    monkeypatch.setattr(pgclaim.worker, "LISTEN_PROBE_WAIT", 0.5)

    async def body(c: AsyncQueueClient) -> None:
        done = asyncio.Event()
        w = worker(c, lambda rec: done.set(), poll_interval=0.3, listen_dsn=cluster_url)
        task = asyncio.create_task(w.run())
        try:
            await wait_for(lambda: any("polling every 0.3s instead" in r.getMessage()
                                       for r in list(caplog.records)), "the listener to give up")
            assert not w.listening
            await c.enqueue("q", {})
            await asyncio.wait_for(done.wait(), 10)
        finally:
            w.stop()
            await asyncio.wait_for(task, 20)
    run(dsn, body)
    assert counts(conn) == {"completed": 1}


def test_the_asyncio_example_of_the_docs_runs(dsn: str, conn: psycopg.Connection[Any],
                                               monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """The first ``python`` block of the asyncio section of docs/python.md, run as written
    against the fresh database (``DATABASE_URL``)."""
    text = (ROOT / "docs" / "python.md").read_text()
    section = text.split("\n## asyncio\n", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match, "docs/python.md has no asyncio example"
    monkeypatch.setenv("DATABASE_URL", dsn)
    namespace: dict[str, Any] = {"__name__": "__main__"}
    exec(compile(match.group(1), "docs/python.md (asyncio)", "exec"), namespace)  # noqa: S102
    out = capsys.readouterr().out
    assert "sent 3 email(s)" in out, out
    assert counts(conn) == {"completed": 3}
