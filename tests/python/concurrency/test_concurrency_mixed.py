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
            left = conn.execute("select count(*) from public.every_record where queue = %s"
                                " and status in ('pending', 'running')", (QUEUE,)).fetchone()
            if left == (0,):
                return
            time.sleep(0.2)
        raise AssertionError("records still unfinished after the drain")


def wait_lease_expired(conn: psycopg.Connection[Any], rid: int, deadline: float = 60.0) -> None:
    """Waits until the database's own clock (pgclaim._now()) is past the lease of ``rid``:
    the wait ends on what the database says, not on a sleep that assumes speed."""
    until = time.monotonic() + deadline
    while time.monotonic() < until:
        row = conn.execute("select pgclaim._now() > lease_until from public.every_record"
                           " where id = %s", (rid,)).fetchone()
        if row == (True,):
            return
        time.sleep(0.05)
    raise AssertionError(f"the lease of record {rid} never expired")


# What the scripted phase must see with a correct pgclaim (a broken one may differ).
SCRIPT_EXPECTED: dict[str, Any] = {
    "fail with attempts left": "pending",
    "fail of the last attempt": "failed",
    "retry_failed": 1,
    "extend_lease": 1,
    "release": 1,
    "cancel pending": 1,
    "cancel running": 1,
    "complete after cancel": 0,
    "reclaim of an expired lease": 1,
    "claim after the reclaim": 1,
    "stale complete without token": 0,
    "stale fail with token": "PC003",
    "holder completes": 1,
    "claim sweeping an expired lease": 1,
    "stale complete with token": 0,
}


def scripted(dsn: str, sh: Shared) -> dict[str, Any]:
    """Drives records through every path a random run may or may not reach, one step at a
    time, before the random actors start, under the same actor names (so the history checker
    judges these steps like any other): fail -> pending, fail of the last attempt -> failed,
    retry_failed -> pending, extend, release, cancel of a pending and of a running record, a
    lease that expires and is taken back by reclaim_orphans and by claim_batch's sweep, and
    the stale holder's complete and fail that must be refused. Returns what each call said."""
    out: dict[str, Any] = {}
    names = ("worker-0", "worker-1", "worker-2", "worker-3", "operator")
    conns = {n: psycopg.connect(dsn, autocommit=True, application_name=n) for n in names}
    w0, w1, w2, w3, op = (conns[n] for n in names)

    def one(conn: psycopg.Connection[Any], sql: str, args: Any = None) -> Any:
        return call(conn, sh, sql, args)[0][0]

    priority = iter(range(100, 200))

    def enqueue(max_attempts: int | None = None) -> int:
        # Each record outranks those left pending by earlier steps, so the next claim of
        # one record takes this one.
        rid = int(one(op, "select pgclaim.enqueue(%s, %s, %s, null, null, %s)",
                      (QUEUE, Jsonb({"script": True}), next(priority), max_attempts)))
        with sh.lock:
            sh.ids.append(rid)
        return rid

    def claim(conn: psycopg.Connection[Any], name: str, rid: int,
              lease: str = "1 minute") -> int:
        rows = call(conn, sh, "select id, lease_token from pgclaim.claim_batch(%s, %s, 1,"
                    " %s::interval)", (QUEUE, name, lease))
        assert [r[0] for r in rows] == [rid], f"{name} claimed {rows}, expected record {rid}"
        return int(rows[0][1])

    def complete(conn: psycopg.Connection[Any], name: str, rid: int,
                 tok: int | None) -> int:
        n = int(one(conn, "select pgclaim.complete(%s, %s, %s)",
                    (name, [rid], None if tok is None else [tok])))
        with sh.lock:
            sh.completed_by[name] += n
        return n

    try:
        rid = enqueue()
        tok = claim(w0, "worker-0", rid)
        out["fail with attempts left"] = one(
            w0, "select pgclaim.fail('worker-0', %s, 'boom', '0 seconds', %s)", (rid, tok))

        rid = enqueue(max_attempts=1)
        tok = claim(w0, "worker-0", rid)
        out["fail of the last attempt"] = one(
            w0, "select pgclaim.fail('worker-0', %s, 'boom', null, %s)", (rid, tok))
        out["retry_failed"] = one(op, "select pgclaim.retry_failed(%s, %s)", (QUEUE, [rid]))
        tok = claim(w0, "worker-0", rid)
        out["extend_lease"] = one(
            w0, "select pgclaim.extend_lease('worker-0', %s, '2 minutes', %s)", ([rid], [tok]))
        out["release"] = one(w0, "select pgclaim.release('worker-0', %s, %s)", ([rid], [tok]))
        complete(w0, "worker-0", rid, claim(w0, "worker-0", rid))

        rid = enqueue()
        out["cancel pending"] = one(op, "select pgclaim.cancel(%s)", ([rid],))
        rid = enqueue()
        tok = claim(w0, "worker-0", rid)
        out["cancel running"] = one(op, "select pgclaim.cancel(%s)", ([rid],))
        out["complete after cancel"] = complete(w0, "worker-0", rid, tok)

        # A worker stalls past its lease: reclaim_orphans takes the record back, another
        # worker claims it, and the stale holder's reports must change nothing.
        rid = enqueue()
        tok = claim(w1, "worker-1", rid, lease="0.2 seconds")
        wait_lease_expired(op, rid)
        out["reclaim of an expired lease"] = one(op, "select pgclaim.reclaim_orphans()")
        tok2 = claim(w2, "worker-2", rid)
        out["claim after the reclaim"] = 1
        out["stale complete without token"] = complete(w1, "worker-1", rid, None)
        try:
            out["stale fail with token"] = one(
                w1, "select pgclaim.fail('worker-1', %s, 'late', null, %s)", (rid, tok))
        except psycopg.Error as exc:
            out["stale fail with token"] = exc.sqlstate
        out["holder completes"] = complete(w2, "worker-2", rid, tok2)

        # The same stall, taken back by claim_batch's own sweep of expired leases.
        rid = enqueue()
        tok = claim(w3, "worker-3", rid, lease="0.2 seconds")
        wait_lease_expired(op, rid)
        tok2 = claim(w2, "worker-2", rid)
        out["claim sweeping an expired lease"] = 1
        out["stale complete with token"] = complete(w3, "worker-3", rid, tok)
        complete(w2, "worker-2", rid, tok2)
    finally:
        for c in conns.values():
            c.close()
    return out


def run_mixed(dsn: str, seconds: float, seed: int, min_claimed: int = 200,
              ) -> tuple[Shared, dict[str, Any], psycopg.Connection[Any]]:
    """The scripted phase, then the random run: at least ``seconds`` long and until the
    random workers claimed ``min_claimed`` records (a slow machine runs longer instead of
    testing less), then the drain."""
    conn = psycopg.connect(dsn, autocommit=True)
    install_history(conn)
    conn.execute("select pgclaim.create_queue(%s, lease => '2 seconds', max_attempts => 3,"
                 " backoff_base => '0.1 seconds', backoff_max => '0.5 seconds')", (QUEUE,))
    sh = Shared()
    script = scripted(dsn, sh)
    threads = [threading.Thread(target=guarded, args=(sh, f"producer-{i}", lambda i=i:
                                producer(dsn, sh, f"producer-{i}", seed + i))) for i in range(2)]
    threads += [threading.Thread(target=guarded, args=(sh, f"worker-{i}", lambda i=i:
                                 worker(dsn, sh, f"worker-{i}", seed + 10 + i))) for i in range(5)]
    threads.append(threading.Thread(target=guarded, args=(sh, "operator",
                                    lambda: operator(dsn, sh, seed + 100))))
    for t in threads:
        t.start()
    started = time.monotonic()
    give_up = started + max(10 * seconds, 180.0)
    while time.monotonic() < give_up and not sh.errors:
        with sh.lock:
            claimed = sh.events["claimed"]
        if time.monotonic() - started >= seconds and claimed >= min_claimed:
            break
        time.sleep(0.1)
    sh.stop.set()
    for t in threads:
        t.join(timeout=120)
    assert not [t.name for t in threads if t.is_alive()], "an actor did not stop"
    assert sh.errors or sh.events["claimed"] >= min_claimed, (
        f"the random workers claimed {sh.events['claimed']} records in"
        f" {time.monotonic() - started:.0f} s")
    drain(dsn, sh)
    return sh, script, conn


@pytest.mark.parametrize("seconds", [
    pytest.param(8.0, id="8s"), pytest.param(60.0, id="60s", marks=pytest.mark.slow),
])
def test_mixed_operations_keep_every_invariant(dsn: str, seconds: float) -> None:
    sh, script, conn = run_mixed(dsn, seconds=seconds, seed=7)
    with conn:
        assert sh.errors == []
        assert script == SCRIPT_EXPECTED
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
            "select id, status::text from public.every_record where queue = %s", (QUEUE,)).fetchall())
        assert ids == set(finished)
        assert set(finished.values()) <= {"completed", "failed", "cancelled"}
        stats, truth = stats_vs_truth(conn, QUEUE)
        assert stats == truth
        print(dict(sh.events), report.records, report.steps)
        # Every lifecycle step was checked at least once: the scripted phase makes each
        # happen in every run, whatever the random part reaches.
        steps = Counter((o, n) for o, n in conn.execute(
            "select old_status, new_status from public.record_history").fetchall())
        forced = [(None, "pending"), ("pending", "running"), ("running", "running"),
                  ("running", "completed"), ("running", "pending"), ("running", "failed"),
                  ("failed", "pending"), ("pending", "cancelled"), ("running", "cancelled")]
        assert [s for s in forced if steps[s] == 0] == []
        # The random part ran next to the script: its workers claimed and completed.
        assert sh.events["claimed"] >= 200
