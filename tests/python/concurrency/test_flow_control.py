"""Flow control under 20 concurrent claimers: FIFO groups stay exclusive and in order while
producers add to them, with a ledger written in the claimers' own transactions (the checks
do not trust pgclaim's bookkeeping)."""
from __future__ import annotations

import itertools
import threading
from collections import defaultdict
from typing import Any

import psycopg
import pytest
from pgdb import freeze_clock

pytestmark = pytest.mark.concurrent

CLAIMERS = 20

LEDGER = """
create table public.flow_ledger (
    record_id bigint not null,
    event text not null,
    worker_id text not null,
    at timestamptz not null,
    run_at timestamptz
)
"""

# The claim and its ledger rows commit together; so do a complete and its rows.
CLAIM = """
with c as materialized (
    select * from pgclaim.claim_batch(%(queue)s, %(worker)s, %(size)s)
), l as (
    insert into public.flow_ledger (record_id, event, worker_id, at, run_at)
    select c.id, 'claimed', %(worker)s, pg_catalog.clock_timestamp(), c.run_at from c
)
select c.id from c
"""

COMPLETE = """
with d as (
    select pgclaim.complete(%(worker)s, %(ids)s) as n
)
insert into public.flow_ledger (record_id, event, worker_id, at)
select u.id, 'completed', %(worker)s, pg_catalog.clock_timestamp()
from pg_catalog.unnest(%(ids)s::bigint[]) as u (id), d
"""


def drain(dsn: str, queue: str, stop: threading.Event, errors: list[BaseException],
          worker: str, size: int) -> None:
    """Claims and completes until ``stop`` is set and the queue has nothing left to hand out."""
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            while True:
                ids = [r[0] for r in conn.execute(
                    CLAIM, {"queue": queue, "worker": worker, "size": size}).fetchall()]
                if ids:
                    conn.execute(COMPLETE, {"worker": worker, "ids": ids})
                elif stop.is_set():
                    left = conn.execute(
                        "select count(*) from pgclaim.records where queue = %s",
                        (queue,)).fetchone()
                    if left is not None and left[0] == 0:
                        return
    except BaseException as exc:  # noqa: BLE001 - reported by the test
        errors.append(exc)


def produce(dsn: str, queue: str, groups: int, per_group: int, n: int,
            out: dict[int, str], errors: list[BaseException]) -> None:
    """Enqueues ``per_group`` records into each of producer ``n``'s own groups, one call
    each: within a group, enqueue order is id order and run_at order."""
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            for i in range(per_group):
                for g in range(groups):
                    row = conn.execute(
                        "select pgclaim.enqueue(%s, %s::jsonb, group_key => %s)",
                        (queue, f'{{"p": {n}, "i": {i}}}', f"g{n}-{g}")).fetchone()
                    assert row is not None
                    out[row[0]] = f"g{n}-{g}"
    except BaseException as exc:  # noqa: BLE001 - reported by the test
        errors.append(exc)


def test_groups_run_one_at_a_time_in_order_under_20_claimers(dsn: str) -> None:
    queue = "flow_groups"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(LEDGER)
        conn.execute("select pgclaim.create_queue(%s, lease => '10 minutes')", (queue,))
        group_of: dict[int, str] = {}
        errors: list[BaseException] = []
        producers = [threading.Thread(target=produce,
                                      args=(dsn, queue, 30, 5, n, group_of, errors))
                     for n in range(4)]
        stop = threading.Event()
        claimers = [threading.Thread(target=drain,
                                     args=(dsn, queue, stop, errors, f"w{k}", 1 + k % 7))
                    for k in range(CLAIMERS)]
        for t in producers + claimers:
            t.start()
        for t in producers:
            t.join(timeout=180)
        stop.set()
        for t in claimers:
            t.join(timeout=180)
        assert not any(t.is_alive() for t in producers + claimers), "a thread hung"
        assert errors == []

        rows = conn.execute(
            "select record_id, event, at, run_at from public.flow_ledger order by at").fetchall()
    claimed: dict[int, list[Any]] = defaultdict(list)
    completed: dict[int, Any] = {}
    run_at: dict[int, Any] = {}
    for rid, event, at, due in rows:
        if event == "claimed":
            claimed[rid].append(at)
            run_at[rid] = due
        else:
            completed[rid] = at
    assert set(claimed) == set(group_of), "every record was handed out"
    assert [r for r, ats in claimed.items() if len(ats) != 1] == [], "exactly once"
    assert set(completed) == set(group_of)
    by_group: dict[str, list[int]] = defaultdict(list)
    for rid in sorted(group_of, key=lambda r: (run_at[r], r)):
        by_group[group_of[rid]].append(rid)
    for group, ids in by_group.items():
        # FIFO: a group's records are handed out in (run_at, id) order (one priority), ...
        assert sorted(ids, key=lambda r: claimed[r][0]) == ids, f"{group} out of order"
        # ... and one at a time: each is claimed only after the one before it completed.
        overlaps = [(a, b) for a, b in itertools.pairwise(ids)
                    if claimed[b][0] <= completed[a]]
        assert overlaps == [], f"{group}: records ran at the same time"
    with psycopg.connect(dsn, autocommit=True) as conn:
        left = conn.execute("select (select count(*) from pgclaim.groups),"
                            " (select count(*) from pgclaim.waiting)").fetchone()
    assert left == (0, 0), "no group is left behind"


def test_twenty_enqueues_into_one_empty_group_make_one_head(dsn: str) -> None:
    """Twenty connections enqueue into the same empty group at once (held at a barrier
    inside their transactions, so their inserts overlap): exactly one becomes the head."""
    queue = "flow_race"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("select pgclaim.create_queue(%s)", (queue,))
    barrier = threading.Barrier(CLAIMERS)
    errors: list[BaseException] = []
    ids: list[int] = []

    def enqueue_one() -> None:
        try:
            with psycopg.connect(dsn) as c:
                barrier.wait(timeout=60)
                row = c.execute("select pgclaim.enqueue(%s, '{}', group_key => 'one')",
                                (queue,)).fetchone()
                assert row is not None
                ids.append(row[0])
                c.commit()
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=enqueue_one) for _ in range(CLAIMERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    with psycopg.connect(dsn, autocommit=True) as conn:
        heads = conn.execute(
            "select count(*) from pgclaim.records where queue = %s and run_at < 'infinity'",
            (queue,)).fetchone()
        waiting = conn.execute("select count(*) from pgclaim.waiting").fetchone()
        assert heads == (1,) and waiting == (CLAIMERS - 1,)
        handed: list[int] = []
        while True:
            batch = [r[0] for r in conn.execute(
                "select id from pgclaim.claim_batch(%s, 'w', 100)", (queue,)).fetchall()]
            if not batch:
                break
            assert len(batch) == 1, "one record of the group at a time"
            handed += batch
            conn.execute("select pgclaim.complete('w', %s)", (batch,))
    assert sorted(handed) == sorted(ids)


def run_claimers(dsn: str, queue: str, body: Any) -> list[BaseException]:
    """Runs ``body(conn, worker)`` in CLAIMERS threads, each with its own connection, started
    together; returns what they raised."""
    errors: list[BaseException] = []
    barrier = threading.Barrier(CLAIMERS)

    def run(k: int) -> None:
        try:
            with psycopg.connect(dsn, autocommit=True) as conn:
                barrier.wait(timeout=60)
                body(conn, f"w{k}")
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(CLAIMERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=180)
    assert not any(t.is_alive() for t in threads), "a claimer hung"
    return errors


def test_max_running_holds_under_20_claimers(dsn: str) -> None:
    """Each claim writes, in its own transaction and before it commits, how many records of
    the queue are running (its own included; read by a second statement, which sees every
    claim committed before it). That count never passes the cap."""
    queue, cap, records = "flow_cap", 5, 600
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("create table public.cap_ledger (worker text, claimed int, running int)")
        conn.execute("select pgclaim.create_queue(%s, max_running => %s)", (queue, cap))
        conn.execute("select pgclaim.enqueue_batch(%s, array_fill('{}'::jsonb, array[%s]))",
                     (queue, records))

    def body(conn: psycopg.Connection[Any], worker: str) -> None:
        size = 1 + int(worker[1:]) % 4
        while True:
            with conn.transaction():
                ids = [r[0] for r in conn.execute(
                    "select id from pgclaim.claim_batch(%s, %s, %s)",
                    (queue, worker, size)).fetchall()]
                conn.execute(
                    "insert into public.cap_ledger select %s, %s, count(*)"
                    " from pgclaim.records where queue = %s and status = 'running'",
                    (worker, len(ids), queue))
            if ids:
                conn.execute("select pgclaim.complete(%s, %s)", (worker, ids))
                continue
            left = conn.execute("select count(*) from pgclaim.records where queue = %s",
                                (queue,)).fetchone()
            if left == (0,):
                return

    assert run_claimers(dsn, queue, body) == []
    with psycopg.connect(dsn, autocommit=True) as conn:
        over = conn.execute("select count(*) from public.cap_ledger where running > %s",
                            (cap,)).fetchone()
        total = conn.execute("select sum(claimed) from public.cap_ledger").fetchone()
    assert over == (0,), "more records running than max_running"
    assert total == (records,)


def test_rate_holds_under_20_claimers(dsn: str) -> None:
    """With the clock frozen, 20 claimers together get exactly the burst; each step of the
    clock adds exactly rate x step, however many claim at once."""
    queue = "flow_rate"
    with psycopg.connect(dsn, autocommit=True) as conn:
        freeze_clock(conn, "2030-01-01 00:00:00+00")
        conn.execute("select pgclaim.create_queue(%s, rate => 10, burst => 25)", (queue,))
        conn.execute("select pgclaim.enqueue_batch(%s, array_fill('{}'::jsonb, array[500]))",
                     (queue,))
        got: list[int] = []

        def body(c: psycopg.Connection[Any], worker: str) -> None:
            n = len(c.execute("select id from pgclaim.claim_batch(%s, %s, 7)",
                              (queue, worker)).fetchall())
            n += len(c.execute("select id from pgclaim.claim_batch(%s, %s, 7)",
                               (queue, worker)).fetchall())
            got.append(n)

        assert run_claimers(dsn, queue, body) == []
        assert sum(got) == 25, "the burst, not one record more"
        for step in (1, 2.5):
            now = conn.execute("select pgclaim._now() + make_interval(secs => %s)",
                               (step,)).fetchone()
            assert now is not None
            freeze_clock(conn, now[0])
            got.clear()
            assert run_claimers(dsn, queue, body) == []
            assert sum(got) == int(10 * step), f"{step} s at 10 per second"
