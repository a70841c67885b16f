"""MultiWorker: one queue in two real databases; one goes away, the other keeps draining."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from pgdb import create_database, db_url, drop_database

import pgclaim
from pgclaim import Claimed, MultiWorker, RetryPolicy


def wait_for(cond: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def completed(url: str) -> int:
    with psycopg.connect(url) as c:
        row = c.execute("select count(*) from pgclaim.records where status = 'completed'")
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
