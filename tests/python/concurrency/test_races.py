"""Races between two or more sessions, forced into a known interleaving.

An open transaction holds its row locks; the other session's call is started in a thread and
the test waits until PostgreSQL shows that call waiting on a lock (pg_stat_activity), then
commits or rolls back the first. Free-running variants start many callers at one barrier and
check the totals. Clocks are frozen per test database (pgclaim._now() replaced) so that
leases expire without sleeping.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from _storm import check_history, in_thread, install_history, wait_blocked
from pgdb import freeze_clock
from psycopg.types.json import Jsonb

pytestmark = pytest.mark.concurrent

T0 = "2030-01-01 00:00:00+00"
LATER = "2030-01-01 00:10:00+00"


@contextmanager
def sessions(dsn: str, *names: str) -> Iterator[list[psycopg.Connection[Any]]]:
    """Autocommit connections named (application_name) after the actors."""
    conns = [psycopg.connect(dsn, autocommit=True, application_name=n) for n in names]
    try:
        yield conns
    finally:
        for c in conns:
            c.close()


def one(conn: psycopg.Connection[Any], sql: str, args: Any = None) -> Any:
    row = conn.execute(sql, args).fetchone()
    assert row is not None
    return row[0]


def setup_queue(conn: psycopg.Connection[Any], records: int = 1, lease: str = "30 seconds") -> list[int]:
    install_history(conn)
    freeze_clock(conn, T0)
    conn.execute("select pgclaim.create_queue('q', lease => %s::interval, max_attempts => 3)",
                 (lease,))
    return [r[0] for r in conn.execute(
        "select pgclaim.enqueue_batch('q', %s)", ([Jsonb({"i": i}) for i in range(records)],)
    ).fetchall()]


def claim_as(dsn: str, worker: str, n: int) -> None:
    """Claims n records of queue q from a connection named after the worker."""
    with psycopg.connect(dsn, autocommit=True, application_name=worker) as c:
        c.execute("select pgclaim.claim_batch('q', %s, %s)", (worker, n))


def status(conn: psycopg.Connection[Any], rid: int) -> str:
    return str(one(conn, "select status::text from public.every_record where id = %s", (rid,)))


def history_ok(conn: psycopg.Connection[Any], workers: set[str]) -> None:
    rep = check_history(conn, frozenset(workers))
    assert rep.ok, rep


# ------------------------------------------------------------- complete vs reclaim


def test_reclaim_first_then_complete_learns_it_lost(dsn: str) -> None:
    with sessions(dsn, "admin", "w1", "op") as (admin, w1, op):
        (rid,) = setup_queue(admin)
        tok = one(w1, "select lease_token from pgclaim.claim_batch('q', 'w1', 1)")
        freeze_clock(admin, LATER)
        op.execute("begin")
        assert one(op, "select pgclaim.reclaim_orphans()") == 1
        fut = in_thread(lambda: one(w1, "select pgclaim.complete('w1', %s, %s)", ([rid], [tok])))
        wait_blocked(admin, w1.info.backend_pid, fut)
        op.execute("commit")
        assert fut.result(timeout=60) == 0
        assert status(admin, rid) == "pending"
        with pytest.raises(psycopg.Error) as err:
            w1.execute("select pgclaim.fail('w1', %s, 'late', lease_token => %s)", (rid, tok))
        assert err.value.sqlstate == "PC003"
        assert one(w1, "select pgclaim.extend_lease('w1', %s)", ([rid],)) == 0
        history_ok(admin, {"w1"})


def test_complete_first_then_reclaim_skips_it(dsn: str) -> None:
    with sessions(dsn, "admin", "w1", "op") as (admin, w1, op):
        (rid,) = setup_queue(admin)
        w1.execute("select pgclaim.claim_batch('q', 'w1', 1)")
        freeze_clock(admin, LATER)
        w1.execute("begin")
        assert one(w1, "select pgclaim.complete('w1', %s)", ([rid],)) == 1
        # The row is locked by the open complete: reclaim skips it without waiting.
        assert one(op, "select pgclaim.reclaim_orphans()") == 0
        w1.execute("commit")
        assert one(op, "select pgclaim.reclaim_orphans()") == 0
        assert status(admin, rid) == "completed"
        history_ok(admin, {"w1"})


def test_complete_racing_reclaim_exactly_one_wins_per_record(dsn: str) -> None:
    n = 300
    with sessions(dsn, "admin", "w1", "op1", "op2") as (admin, w1, op1, op2):
        ids = setup_queue(admin, n)
        toks = [r[1] for r in w1.execute(
            "select id, lease_token from pgclaim.claim_batch('q', 'w1', %s)", (n,)).fetchall()]
        freeze_clock(admin, LATER)
        barrier = threading.Barrier(3)
        won: dict[str, int] = {"complete": 0, "reclaim": 0}
        lock = threading.Lock()

        def completer() -> None:
            barrier.wait()
            for i in range(0, n, 10):
                k = one(w1, "select pgclaim.complete('w1', %s, %s)", (ids[i:i + 10], toks[i:i + 10]))
                with lock:
                    won["complete"] += k

        def reclaimer(c: psycopg.Connection[Any]) -> None:
            barrier.wait()
            while True:
                k = one(c, "select pgclaim.reclaim_orphans(7)")
                with lock:
                    won["reclaim"] += k
                if k == 0 and not c.execute(
                        "select 1 from public.every_record where status = 'running' limit 1").fetchone():
                    return

        futs = [in_thread(completer), in_thread(lambda: reclaimer(op1)),
                in_thread(lambda: reclaimer(op2))]
        for f in futs:
            f.result(timeout=60)
        counts = dict(admin.execute(
            "select status::text, count(*) from public.every_record group by 1").fetchall())
        assert won["complete"] + won["reclaim"] == n
        assert counts.get("completed", 0) == won["complete"]
        assert counts.get("pending", 0) == won["reclaim"]
        history_ok(admin, {"w1"})


# ----------------------------------------------------------------- two reclaims


def test_two_reclaims_in_open_transactions_take_each_record_once(dsn: str) -> None:
    with sessions(dsn, "admin", "op1", "op2") as (admin, op1, op2):
        setup_queue(admin, 50)
        claim_as(dsn, "w1", 50)
        freeze_clock(admin, LATER)
        op1.execute("begin")
        assert one(op1, "select pgclaim.reclaim_orphans(30)") == 30
        assert one(op2, "select pgclaim.reclaim_orphans()") == 20  # skips op1's 30, no wait
        op1.execute("commit")
        assert one(op2, "select pgclaim.reclaim_orphans()") == 0
        assert one(admin, "select count(*) from public.every_record where status = 'pending'") == 50
        assert one(admin, "select count(*) from public.record_history"
                   " where old_status = 'running' and new_status = 'pending'") == 50


def test_reclaims_at_once_reclaim_each_record_once(dsn: str) -> None:
    n = 600
    names = [f"op{i}" for i in range(4)]
    with sessions(dsn, "admin", *names) as (admin, *ops):
        setup_queue(admin, n)
        claim_as(dsn, "w1", n)
        freeze_clock(admin, LATER)
        barrier = threading.Barrier(len(ops))
        totals: list[int] = []

        def run(c: psycopg.Connection[Any]) -> int:
            barrier.wait()
            total = 0
            while (k := one(c, "select pgclaim.reclaim_orphans(25)")) > 0:
                total += k
            return total

        futs = [in_thread(lambda c=c: run(c)) for c in ops]
        totals = [f.result(timeout=60) for f in futs]
        assert sum(totals) == n
        assert one(admin, "select count(*) from public.every_record where status = 'pending'") == n
        per_record = admin.execute(
            "select id, count(*) from public.record_history where old_status = 'running'"
            " group by id having count(*) <> 1").fetchall()
        assert per_record == []
        history_ok(admin, {"w1"})


# --------------------------------------------------------------- cancel vs running


def test_cancel_of_a_running_record_fences_its_holder(dsn: str) -> None:
    with sessions(dsn, "admin", "w1", "op") as (admin, w1, op):
        (rid,) = setup_queue(admin)
        tok = one(w1, "select lease_token from pgclaim.claim_batch('q', 'w1', 1)")
        assert one(op, "select pgclaim.cancel(%s)", ([rid],)) == 1
        assert one(w1, "select pgclaim.complete('w1', %s, %s)", ([rid], [tok])) == 0
        assert one(w1, "select pgclaim.extend_lease('w1', %s)", ([rid],)) == 0
        assert one(w1, "select pgclaim.release('w1', %s)", ([rid],)) == 0
        with pytest.raises(psycopg.Error) as err:
            w1.execute("select pgclaim.fail('w1', %s, 'x')", (rid,))
        assert err.value.sqlstate == "PC003"
        freeze_clock(admin, LATER)
        assert one(op, "select pgclaim.reclaim_orphans()") == 0
        assert status(admin, rid) == "cancelled"
        history_ok(admin, {"w1"})


@pytest.mark.parametrize("first", ["complete", "cancel"])
def test_cancel_racing_complete_one_wins(dsn: str, first: str) -> None:
    with sessions(dsn, "admin", "w1", "op") as (admin, w1, op):
        (rid,) = setup_queue(admin)
        w1.execute("select pgclaim.claim_batch('q', 'w1', 1)")
        calls = {"complete": (w1, "select pgclaim.complete('w1', %s)"),
                 "cancel": (op, "select pgclaim.cancel(%s)")}
        second = "cancel" if first == "complete" else "complete"
        c1, sql1 = calls[first]
        c2, sql2 = calls[second]
        c1.execute("begin")
        assert one(c1, sql1, ([rid],)) == 1
        fut = in_thread(lambda: one(c2, sql2, ([rid],)))
        wait_blocked(admin, c2.info.backend_pid, fut)
        c1.execute("commit")
        assert fut.result(timeout=60) == 0
        assert status(admin, rid) == ("completed" if first == "complete" else "cancelled")
        history_ok(admin, {"w1"})


# -------------------------------------------------------------------- dedup_key


@pytest.mark.parametrize("outcome", ["commit", "rollback"])
def test_dedup_enqueue_waits_for_the_first_and_adds_nothing(dsn: str, outcome: str) -> None:
    with sessions(dsn, "admin", "p1", "p2") as (admin, p1, p2):
        setup_queue(admin, 0)
        sql = "select pgclaim.enqueue('q', '{}', dedup_key => 'k')"
        p1.execute("begin")
        first = one(p1, sql)
        fut = in_thread(lambda: one(p2, sql))
        wait_blocked(admin, p2.info.backend_pid, fut)
        p1.execute(outcome)
        second = fut.result(timeout=60)
        rows = admin.execute("select id from public.every_record where dedup_key = 'k'").fetchall()
        assert rows == [(second,)]
        if outcome == "commit":
            assert second == first
        else:
            assert second != first


def test_dedup_enqueues_at_once_make_one_record(dsn: str) -> None:
    names = [f"p{i}" for i in range(12)]
    with sessions(dsn, "admin", *names) as (admin, *prods):
        setup_queue(admin, 0)
        for round_no in range(5):
            barrier = threading.Barrier(len(prods))
            key = f"key-{round_no}"

            def go(c: psycopg.Connection[Any], key: str = key,
                   barrier: threading.Barrier = barrier) -> int:
                barrier.wait()
                return int(one(c, "select pgclaim.enqueue('q', '{}', dedup_key => %s)", (key,)))

            futs = [in_thread(lambda c=c: go(c)) for c in prods]
            got = {f.result(timeout=60) for f in futs}
            rows = admin.execute("select id from public.every_record where dedup_key = %s",
                                 (key,)).fetchall()
            assert len(got) == 1 and rows == [(got.pop(),)]


# ----------------------------------------------------------- drop_queue vs workers


def test_drop_queue_waits_for_an_open_claim_and_deletes_its_records(dsn: str) -> None:
    with sessions(dsn, "admin", "w1", "op") as (admin, w1, op):
        setup_queue(admin, 5)
        w1.execute("begin")
        ids = [r[0] for r in w1.execute("select id from pgclaim.claim_batch('q', 'w1', 3)")]
        fut = in_thread(lambda: one(op, "select pgclaim.drop_queue('q', force => true)"))
        wait_blocked(admin, op.info.backend_pid, fut)
        w1.execute("commit")
        assert fut.result(timeout=60) == 5
        assert one(w1, "select pgclaim.complete('w1', %s)", (ids,)) == 0
        with pytest.raises(psycopg.Error) as err:
            w1.execute("select pgclaim.claim_batch('q', 'w1', 3)")
        assert err.value.sqlstate == "PC001"
        assert one(admin, "select count(*) from public.every_record") == 0


@pytest.mark.parametrize("first", ["enqueue", "drop"])
def test_drop_queue_racing_enqueue_leaves_no_orphan(dsn: str, first: str) -> None:
    with sessions(dsn, "admin", "p1", "op") as (admin, p1, op):
        setup_queue(admin, 2)
        calls = {"enqueue": (p1, "select pgclaim.enqueue('q', '{}')"),
                 "drop": (op, "select pgclaim.drop_queue('q', force => true)")}
        second = "drop" if first == "enqueue" else "enqueue"
        c1, sql1 = calls[first]
        c2, sql2 = calls[second]
        c1.execute("begin")
        c1.execute(sql1)
        fut = in_thread(lambda: one(c2, sql2))
        wait_blocked(admin, c2.info.backend_pid, fut)
        c1.execute("commit")
        if first == "enqueue":
            assert fut.result(timeout=60) == 3  # the drop waited and took the new record too
        else:
            with pytest.raises(psycopg.Error) as err:
                fut.result(timeout=60)
            assert err.value.sqlstate == "PC001"
        assert one(admin, "select count(*) from public.every_record") == 0
        assert one(admin, "select count(*) from pgclaim.queues") == 0


def test_drop_queue_while_workers_claim(dsn: str) -> None:
    names = [f"w{i}" for i in range(4)] + ["p1", "op"]
    with sessions(dsn, "admin", *names) as (admin, *conns):
        install_history(admin)
        admin.execute("select pgclaim.create_queue('q')")
        admin.execute("select pgclaim.enqueue_batch('q', %s)",
                      ([Jsonb({"i": i}) for i in range(3000)],))
        errors: list[str] = []
        pc001: list[str] = []

        def loop(c: psycopg.Connection[Any], name: str, body: Callable[[], None]) -> None:
            # Each actor runs until it learns the queue is gone (the drop comes, so this
            # ends; the deadline only bounds a hang).
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                try:
                    body()
                except psycopg.Error as exc:
                    (pc001 if exc.sqlstate == "PC001" else errors).append(f"{name}: {exc}")
                    if exc.sqlstate == "PC001":
                        return

        def claimer(c: psycopg.Connection[Any], name: str) -> Callable[[], None]:
            def body() -> None:
                rows = c.execute("select id, lease_token from pgclaim.claim_batch('q', %s, 20)",
                                 (name,)).fetchall()
                time.sleep(0.005)
                if rows:
                    c.execute("select pgclaim.complete(%s, %s, %s)",
                              (name, [r[0] for r in rows], [r[1] for r in rows]))
            return body

        p1, op = conns[4], conns[5]
        futs = [in_thread(lambda c=c, n=n: loop(c, n, claimer(c, n)))
                for c, n in zip(conns[:4], names[:4], strict=True)]
        futs.append(in_thread(lambda: loop(p1, "p1", lambda: p1.execute(
            "select pgclaim.enqueue('q', '{}')") and None)))
        # Drop while the claimers are busy: once they have completed some records.
        deadline = time.monotonic() + 120
        while one(admin, "select count(*) from public.every_record"
                  " where status = 'completed'") < 100 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not errors, errors
        dropped = one(op, "select pgclaim.drop_queue('q', force => true)")
        for f in futs:
            f.result(timeout=150)
        assert errors == []
        assert len(pc001) == 5, "every claimer and the producer learn the queue is gone"
        assert dropped > 0
        assert one(admin, "select count(*) from public.every_record") == 0
        assert one(admin, "select count(*) from public.every_record as r where not exists"
                   " (select from pgclaim.queues as q where q.queue = r.queue)") == 0


# ----------------------------------------------------------- purge vs retry_failed


def test_purge_racing_retry_failed_loses_nothing(dsn: str) -> None:
    """retry_failed puts a failed record back to pending in an open transaction; a purge
    that read it as failed waits for the row. After the commit the record is pending again,
    so the purge must leave it alone: nothing but finished records is ever deleted."""
    with sessions(dsn, "admin", "w1", "op") as (admin, w1, op):
        install_history(admin)
        freeze_clock(admin, T0)
        admin.execute("select pgclaim.create_queue('q', max_attempts => 1)")
        rid = one(admin, "select pgclaim.enqueue('q', '{}')")
        w1.execute("select pgclaim.claim_batch('q', 'w1', 1)")
        assert one(w1, "select pgclaim.fail('w1', %s, 'x')", (rid,)) == "failed"
        freeze_clock(admin, LATER)
        admin.execute("begin")
        assert one(admin, "select pgclaim.retry_failed('q', %s)", ([rid],)) == 1
        fut = in_thread(lambda: one(op, "select pgclaim.purge('q', '1 minute')"))
        wait_blocked(w1, op.info.backend_pid, fut)
        admin.execute("commit")
        purged = fut.result(timeout=60)
        assert admin.execute("select status::text from public.every_record where id = %s",
                             (rid,)).fetchall() == [("pending",)]
        assert purged == 0


# ------------------------------------------------------- counters vs held records


def test_reports_sharing_a_backend_slot_do_not_deadlock(dsn: str) -> None:
    """Two open transactions whose backends start from the same counter slot: A counted a
    completion (its slot row stays locked until it ends) and now waits for a record that B
    holds (B extended its lease); B then counts a completion. Had B counted in A's slot
    row, each would wait for the other (a deadlock, 40P01). B must count in a slot of its
    own and commit, and A go on; every completion is counted once."""
    with sessions(dsn, "admin", "w", "a") as (admin, w, a):
        ids = setup_queue(admin, records=3)
        tokens = dict(w.execute("select id, lease_token from pgclaim.claim_batch('q', 'w', 3)")
                      .fetchall())
        r1, r2, r3 = sorted(ids)
        a.execute("set lock_timeout = '30s'")
        a.execute("begin")
        assert one(a, "select pgclaim.complete('w', %s, %s)", ([r1], [tokens[r1]])) == 1
        held = [r[0] for r in a.execute(
            "select objid from pg_locks where locktype = 'advisory' and pid = pg_backend_pid()"
            " and classid = 1885823793").fetchall()]
        assert len(held) == 1, held
        # A session whose backend starts its slot search at A's slot (pids are handed out
        # in turn, so one comes within a few dozen connections).
        b = None
        for _ in range(1000):
            c = psycopg.connect(dsn, autocommit=True, application_name="b")
            if c.info.backend_pid % 64 == held[0]:
                b = c
                break
            c.close()
        assert b is not None, "no backend with the wanted pid came"
        try:
            b.execute("set lock_timeout = '30s'")
            b.execute("begin")
            assert one(b, "select pgclaim.extend_lease('w', %s)", ([r2],)) == 1
            fut = in_thread(lambda: one(a, "select pgclaim.complete('w', %s, %s)",
                                        ([r2], [tokens[r2]])))
            wait_blocked(w, a.info.backend_pid, fut)
            assert one(b, "select pgclaim.complete('w', %s, %s)", ([r3], [tokens[r3]])) == 1
            b.execute("commit")
            assert fut.result(timeout=60) == 1
            a.execute("commit")
        finally:
            b.close()
        assert one(admin, "select value from pgclaim.metrics()"
                   " where metric = 'completions_total' and queue = 'q'") == 3
        assert one(admin, "select count(*) from public.every_record"
                   " where status = 'completed'") == 3
