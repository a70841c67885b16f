"""Every operation at once: producers, workers that complete, fail, extend, release and stall
past their leases, and an operator that cancels, retries and reclaims, all on one queue.

A trigger (test database only) writes every change of every record to a history table
together with the connection that made it; the checks then prove that each history is a
legal path of the lifecycle, that no record was held by two workers or reported on by a
worker that no longer held it, that nothing was lost, and that queue_stats tells the truth.
"""
from __future__ import annotations

import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest
from _storm import check_history, install_history, stats_vs_truth
from psycopg.types.json import Jsonb

pytestmark = pytest.mark.concurrent

QUEUE = "mixed"
RETRYABLE = {"40P01", "40001"}  # deadlock, serialization failure: the statement changed nothing


@dataclass
class Shared:
    """State the threads share; every field is guarded by ``lock``."""

    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    ids: list[int] = field(default_factory=list)
    completed_by: Counter[str] = field(default_factory=Counter)
    events: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)

    def count(self, key: str, n: int = 1) -> None:
        with self.lock:
            self.events[key] += n


def call(conn: psycopg.Connection[Any], sh: Shared, sql: str, args: Any = None) -> Any:
    """Runs one statement, retrying it when PostgreSQL reports a deadlock."""
    for _ in range(20):
        try:
            return conn.execute(sql, args).fetchall()
        except psycopg.Error as exc:
            if exc.sqlstate in RETRYABLE:
                sh.count("retried " + str(exc.sqlstate))
                continue
            raise
    raise AssertionError(f"gave up retrying {sql}")


def guarded(sh: Shared, actor: str, body: Any) -> None:
    try:
        body()
    except Exception as exc:  # noqa: BLE001 - every unexpected error fails the test
        with sh.lock:
            sh.errors.append(f"{actor}: {type(exc).__name__} {getattr(exc, 'sqlstate', '')} {exc}")


def producer(dsn: str, sh: Shared, name: str, seed: int) -> None:
    rng = random.Random(seed)
    with psycopg.connect(dsn, autocommit=True, application_name=name) as conn:
        while not sh.stop.is_set():
            if rng.random() < 0.6:
                delay = "0.3 seconds" if rng.random() < 0.1 else "0 seconds"
                key = f"k{rng.randrange(10)}" if rng.random() < 0.2 else None
                rows = call(conn, sh, "select pgclaim.enqueue(%s, %s, %s,"
                            " pgclaim._now() + %s::interval, %s)",
                            (QUEUE, Jsonb({"p": name}), rng.randrange(3), delay, key))
            else:
                n = rng.randint(1, 20)
                rows = call(conn, sh, "select pgclaim.enqueue_batch(%s, %s, %s)",
                            (QUEUE, [Jsonb({"i": i}) for i in range(n)], rng.randrange(3)))
            with sh.lock:
                sh.ids += [r[0] for r in rows]
            time.sleep(0.01)


def worker(dsn: str, sh: Shared, name: str, seed: int) -> None:
    rng = random.Random(seed)
    with psycopg.connect(dsn, autocommit=True, application_name=name) as conn:
        while not sh.stop.is_set():
            lease = rng.choice(["1 second", "3 seconds"])
            rows = call(conn, sh, "select id, lease_token from pgclaim.claim_batch(%s, %s, %s,"
                        " %s::interval)", (QUEUE, name, rng.randint(1, 20), lease))
            if not rows:
                time.sleep(0.02)
                continue
            sh.count("claimed", len(rows))
            if rng.random() < 0.15:  # stall past the lease: the reports below may be fenced
                sh.count("stalls")
                time.sleep(1.3 if lease == "1 second" else 3.3)
            use_tokens = rng.random() < 0.5
            done: list[tuple[int, int]] = []
            for rid, tok in rows:
                r = rng.random()
                if r < 0.6:
                    done.append((rid, tok))
                elif r < 0.75:
                    try:
                        st = call(conn, sh, "select pgclaim.fail(%s, %s, 'boom',"
                                  " '0.2 seconds', %s)",
                                  (name, rid, tok if use_tokens else None))[0][0]
                        sh.count("fail->" + st)
                    except psycopg.Error as exc:
                        if exc.sqlstate != "PC003":
                            raise
                        sh.count("fenced fail")
                elif r < 0.85:
                    n = call(conn, sh, "select pgclaim.extend_lease(%s, %s, '2 seconds', %s)",
                             (name, [rid], [tok] if use_tokens else None))[0][0]
                    sh.count("extended", n)
                    done.append((rid, tok))
                else:
                    n = call(conn, sh, "select pgclaim.release(%s, %s, %s)",
                             (name, [rid], [tok] if use_tokens else None))[0][0]
                    sh.count("released", n)
            if done:
                ids = [d[0] for d in done]
                toks = [d[1] for d in done] if use_tokens else None
                n = call(conn, sh, "select pgclaim.complete(%s, %s, %s)", (name, ids, toks))[0][0]
                with sh.lock:
                    sh.completed_by[name] += n
                    sh.events["fenced complete"] += len(done) - n


def operator(dsn: str, sh: Shared, seed: int) -> None:
    rng = random.Random(seed)
    with psycopg.connect(dsn, autocommit=True, application_name="operator") as conn:
        while not sh.stop.is_set():
            with sh.lock:
                sample = rng.sample(sh.ids, min(3, len(sh.ids)))
            if sample and rng.random() < 0.3:
                sh.count("cancelled", call(conn, sh, "select pgclaim.cancel(%s)", (sample,))[0][0])
            if rng.random() < 0.3:
                sh.count("retried failed",
                         call(conn, sh, "select pgclaim.retry_failed(%s)", (QUEUE,))[0][0])
            sh.count("reclaimed",
                     call(conn, sh, "select pgclaim.reclaim_orphans()")[0][0])
            time.sleep(0.05)


def drain(dsn: str, sh: Shared, timeout: float = 60.0) -> None:
    """Takes back what is left and completes every unfinished record."""
    with psycopg.connect(dsn, autocommit=True, application_name="drainer") as conn:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            conn.execute("select pgclaim.reclaim_orphans()")
            rows = conn.execute("select id, lease_token from pgclaim.claim_batch(%s, 'drainer',"
                                " 1000, '1 minute')", (QUEUE,)).fetchall()
            if rows:
                n = conn.execute("select pgclaim.complete('drainer', %s, %s)",
                                 ([r[0] for r in rows], [r[1] for r in rows])).fetchone()
                assert n == (len(rows),)
                with sh.lock:
                    sh.completed_by["drainer"] += len(rows)
                continue
            left = conn.execute("select count(*) from pgclaim.records where queue = %s"
                                " and status in ('pending', 'running')", (QUEUE,)).fetchone()
            if left == (0,):
                return
            time.sleep(0.2)
        raise AssertionError("records still unfinished after the drain")


def run_mixed(dsn: str, seconds: float, seed: int) -> tuple[Shared, psycopg.Connection[Any]]:
    conn = psycopg.connect(dsn, autocommit=True)
    install_history(conn)
    conn.execute("select pgclaim.create_queue(%s, lease => '2 seconds', max_attempts => 3,"
                 " backoff_base => '0.1 seconds', backoff_max => '0.5 seconds')", (QUEUE,))
    sh = Shared()
    threads = [threading.Thread(target=guarded, args=(sh, f"producer-{i}", lambda i=i:
                                producer(dsn, sh, f"producer-{i}", seed + i))) for i in range(2)]
    threads += [threading.Thread(target=guarded, args=(sh, f"worker-{i}", lambda i=i:
                                 worker(dsn, sh, f"worker-{i}", seed + 10 + i))) for i in range(5)]
    threads.append(threading.Thread(target=guarded, args=(sh, "operator",
                                    lambda: operator(dsn, sh, seed + 100))))
    for t in threads:
        t.start()
    time.sleep(seconds)
    sh.stop.set()
    for t in threads:
        t.join(timeout=30)
    drain(dsn, sh)
    return sh, conn


@pytest.mark.parametrize("seconds", [
    pytest.param(8.0, id="8s"), pytest.param(60.0, id="60s", marks=pytest.mark.slow),
])
def test_mixed_operations_keep_every_invariant(dsn: str, seconds: float) -> None:
    sh, conn = run_mixed(dsn, seconds=seconds, seed=7)
    with conn:
        assert sh.errors == []
        workers = frozenset({f"worker-{i}" for i in range(5)} | {"drainer"})
        report = check_history(conn, workers)
        assert report.illegal == []
        assert report.double_holders == []
        assert report.stale_reports == []
        assert report.final_mismatch == []
        # Each worker's own count of completions is what the history saw it complete.
        seen = Counter(dict(conn.execute(
            "select actor, count(*) from public.record_history"
            " where old_status = 'running' and new_status = 'completed' group by actor"
        ).fetchall()))
        assert {k: v for k, v in sh.completed_by.items() if v} == dict(seen)
        # Nothing lost: every id handed to a producer is there and finished.
        ids = set(sh.ids)
        finished = dict(conn.execute(
            "select id, status::text from pgclaim.records where queue = %s", (QUEUE,)).fetchall())
        assert ids == set(finished)
        assert set(finished.values()) <= {"completed", "failed", "cancelled"}
        stats, truth = stats_vs_truth(conn, QUEUE)
        assert stats == truth
        # The run exercised what it claims to test.
        ev = sh.events
        print(dict(ev), report.records, report.steps)
        assert ev["claimed"] > 200 and ev["stalls"] > 0 and ev["reclaimed"] + ev["claimed"] > 0
        assert ev["cancelled"] > 0 and ev["released"] > 0 and ev["extended"] > 0
        assert ev["fail->pending"] > 0
        assert ev["fenced complete"] + ev["fenced fail"] > 0, "no lease ever expired mid-work"
        steps = Counter((o, n) for o, n in conn.execute(
            "select old_status, new_status from public.record_history").fetchall())
        assert steps[("running", "pending")] > 0 and steps[("running", "cancelled")] >= 0
        assert steps[("failed", "pending")] + steps[("running", "failed")] > 0
