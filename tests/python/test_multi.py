"""MultiWorker: one queue in two real databases; one goes away, the other keeps draining;
SIGTERM/SIGINT to a ``pgclaim worker`` process serving both."""
from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from pgdb import create_database, db_url, drop_database

import pgclaim
from pgclaim import Claimed, MultiWorker, RetryPolicy, Worker

HERE = Path(__file__).resolve().parent
PGCLAIM = str(Path(sys.executable).with_name("pgclaim"))
#: record ids of the second database start here, so one ledger tells the two apart
SECOND_IDS = 1_000_000


def wait_for(cond: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def completed(url: str) -> int:
    with psycopg.connect(url) as c:
        row = c.execute("select count(*) from public.every_record where status = 'completed'")
        return int(row.fetchone()[0])  # type: ignore[index]


@pytest.fixture
def second_dsn(cluster_url: str, template_db: str) -> Iterator[str]:
    name = create_database(cluster_url, template_db)
    try:
        yield db_url(cluster_url, name)
    finally:
        drop_database(cluster_url, name)


@pytest.mark.concurrent
def test_one_database_down_the_other_drains(dsn: str, second_dsn: str, cluster_url: str) -> None:
    for url, tag in ((dsn, "a"), (second_dsn, "b")):
        with pgclaim.QueueClient(url) as c:
            c.create_queue("q", lease=60)
            c.enqueue_many("q", [{"n": i, "db": tag} for i in range(40)])
    down = psycopg.conninfo.conninfo_to_dict(dsn)["dbname"]
    seen: dict[str, list[int]] = {"a": [], "b": []}
    lock = threading.Lock()

    def handler(rec: Claimed) -> None:
        time.sleep(0.02)
        with lock:
            seen[rec.payload["db"]].append(rec.id)

    policy = RetryPolicy(attempts=2, base=0.05, cap=0.2, deadline=2)
    multi = MultiWorker([dsn, second_dsn], "q", handler, concurrency=2, batch_size=4,
                        poll_interval=0.3, heartbeat_every=0.5,
                        client_options={"retry": policy, "pool_timeout": 0.5})
    # database a goes away before the workers start
    with psycopg.connect(cluster_url, autocommit=True) as admin:
        admin.execute(f'alter database "{down}" allow_connections false')
        admin.execute("select pg_terminate_backend(pid) from pg_stat_activity"
                      " where datname = %s", [down])
    thread = threading.Thread(target=multi.run)
    thread.start()
    try:
        wait_for(lambda: completed(second_dsn) == 40, what="the healthy database to drain")
        with psycopg.connect(cluster_url, autocommit=True) as admin:
            admin.execute(f'alter database "{down}" allow_connections true')
        assert completed(dsn) == 0  # nothing could be done there meanwhile
        # the pool reconnects with its own growing backoff (1 s, 2 s, 4 s, ...)
        wait_for(lambda: completed(dsn) == 40, timeout=90, what="the other database once back")
    finally:
        multi.stop()
        thread.join(30)
    assert not thread.is_alive()
    for tag in ("a", "b"):  # each record of each database handled once
        assert len(seen[tag]) == 40 and len(set(seen[tag])) == 40


def test_multi_until_empty_and_clients(dsn: str, second_dsn: str) -> None:
    clients = [pgclaim.QueueClient(dsn), pgclaim.QueueClient(second_dsn)]
    try:
        for i, c in enumerate(clients):
            c.create_queue("q")
            c.enqueue_many("q", list(range(5 + i)))
        got: list[Any] = []
        stats = MultiWorker(clients, "q", lambda rec: got.append(rec.payload),
                            poll_interval=0.2).run(until_empty=True)
        assert [s.completed for s in stats] == [5, 6]
        assert sorted(got) == sorted(list(range(5)) + list(range(6)))
        with pytest.raises(ValueError):
            MultiWorker([], "q", lambda rec: None)
    finally:
        for c in clients:
            c.close()


# -- signals to a real process serving two databases ----------------------------------------

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


def two_databases(dsn: str, second_dsn: str, payloads: list[Any]) -> dict[str, list[int]]:
    """The queue in both databases with ``payloads`` in each, and the ledger in the first."""
    from workers_fixture.handlers import CREATE
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute(CREATE)
    with psycopg.connect(second_dsn, autocommit=True) as c:
        c.execute(f"alter table pgclaim.records alter column id restart with {SECOND_IDS}")
    ids = {}
    for url in (dsn, second_dsn):
        with pgclaim.QueueClient(url) as client:
            client.create_queue("q", lease=60)
            ids[url] = client.enqueue_many("q", payloads)
    return ids


def multi_process(dsn: str, second_dsn: str, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(HERE), "PGCLAIM_FIXTURE_DSN": dsn}
    return subprocess.Popen(
        [PGCLAIM, "worker", "workers_fixture.handlers:record", "--queue", "q",
         "--poll-interval", "0.5", "--database", dsn, "--database", second_dsn, *args],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def started(dsn: str) -> tuple[collections.Counter[int], collections.Counter[int]]:
    """How many times each record of the first and of the second database was handled."""
    with psycopg.connect(dsn) as c:
        seen = collections.Counter(r[0] for r in c.execute("select record_id from processed"))
    first = collections.Counter({k: v for k, v in seen.items() if k < SECOND_IDS})
    return first, collections.Counter({k: v for k, v in seen.items() if k >= SECOND_IDS})


def records(url: str) -> list[tuple[int, str, int]]:
    with psycopg.connect(url) as c:
        return c.execute("select id, status::text, attempt from public.every_record order by id"
                         ).fetchall()


def registered(url: str) -> int:
    with psycopg.connect(url) as c:
        return int(c.execute("select count(*) from pgclaim.workers").fetchone()[0])  # type: ignore


def drain(url: str) -> None:
    with pgclaim.QueueClient(url) as client:
        Worker(client, "q", lambda rec: None, poll_interval=0.2,
               install_signals=False).run(until_empty=True)


@pytest.mark.concurrent
def test_first_signal_stops_every_database_gracefully(dsn: str, second_dsn: str) -> None:
    ids = two_databases(dsn, second_dsn, [{"n": i, "sleep": 0.3} for i in range(24)])
    proc = multi_process(dsn, second_dsn, "--concurrency", "2", "--batch-size", "6",
                         "--grace", "30")
    out = Output(proc)
    try:
        wait_for(lambda: all(sum(c.values()) >= 2 for c in started(dsn)),
                 what="handlers in both databases")
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    finally:
        proc.kill()
    text = out.text()
    assert proc.returncode == 0, text
    assert "received SIGINT, stopping 2 worker(s)" in text, text
    assert out.count("deregistered") == 2, text
    for url, seen in zip((dsn, second_dsn), started(dsn), strict=True):
        rows = records(url)
        assert {r[0] for r in rows} == set(ids[url]) and registered(url) == 0
        for rid, status, attempt in rows:
            if status == "completed":  # it ran, and finished within the grace period
                assert seen[rid] == 1
            else:  # released before it started: attempt not counted
                assert (status, attempt, seen[rid]) == ("pending", 0, 0)
        assert 2 <= sum(seen.values()) < 24
        drain(url)
        assert {r[1] for r in records(url)} == {"completed"}


@pytest.mark.concurrent
def test_second_signal_stops_every_database_now(dsn: str, second_dsn: str) -> None:
    ids = two_databases(dsn, second_dsn, [{"n": i, "sleep": 600} for i in range(4)])
    proc = multi_process(dsn, second_dsn, "--concurrency", "2", "--batch-size", "4",
                         "--grace", "600")
    out = Output(proc)
    try:
        wait_for(lambda: all(sum(c.values()) == 2 for c in started(dsn)),
                 what="two running handlers in each database")
        proc.send_signal(signal.SIGTERM)
        wait_for(lambda: out.count("waiting up to 600.0s for 2 running handler(s)") == 2,
                 what="both workers in their grace period")
        proc.send_signal(signal.SIGINT)  # the handlers would run for ten more minutes
        proc.wait(timeout=60)
    finally:
        proc.kill()
    text = out.text()
    assert proc.returncode == 0, text
    assert "received SIGINT again, stopping 2 worker(s) now" in text, text
    assert out.count("deregistered (released 2)") == 2, text
    for url, seen in zip((dsn, second_dsn), started(dsn), strict=True):
        # nothing running, nothing lost: every record pending again, attempt not counted
        assert records(url) == [(i, "pending", 0) for i in ids[url]]
        assert registered(url) == 0
        assert len(seen) == 2 and set(seen) <= set(ids[url])
        drain(url)
        assert {r[1] for r in records(url)} == {"completed"}
