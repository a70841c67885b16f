"""Retention without an operator: reclaim_orphans (which every Worker calls now and then)
also deletes finished records past their queue's retention, at most config.purge_limit a
call, reading pgclaim.finished one slice of 1024 pages at a time, skipping rows that
others hold. The pgTAP file tests/sql/reclaim_orphans/purge_expired.sql checks what it
deletes; these tests check what needs a large table, several connections or a Worker."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from pgdb import freeze_clock

import pgclaim
from pgclaim import Worker

NOW = "2030-01-01 00:00:00+00"
SLICE = 1024  # pages one call reads (sql/20_internal/pgclaim._purge_expired.sql)


def wait_for(cond: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def finished_count(conn: psycopg.Connection[Any], queue: str) -> int:
    row = conn.execute("select count(*) from pgclaim.finished where queue = %s",
                       [queue]).fetchone()
    assert row is not None
    return int(row[0])


def fill_finished(conn: psycopg.Connection[Any], queue: str, n: int, age: str,
                  pad: int = 0) -> None:
    """``n`` cancelled records of ``queue`` that finished ``age`` before NOW, each with a
    payload of about ``pad`` bytes (stored uncompressed below 2 kB)."""
    conn.execute(
        "insert into pgclaim.finished (id, queue, status, priority, run_at, payload, attempt,"
        " max_attempts, enqueued_at, finished_at)"
        " select nextval('pgclaim.records_id_seq'), %(q)s, 'cancelled', 0, t, p, 0, 5, t, t"
        " from (select %(now)s::timestamptz - %(age)s::interval as t,"
        "   jsonb_build_object('pad', (select string_agg(md5(i::text || ':' || j), '')"
        "     from generate_series(1, %(pad)s / 32) as j)) as p,"
        "   i from generate_series(1, %(n)s) as i) as s",
        {"q": queue, "now": NOW, "age": age, "pad": pad, "n": n})


def pages(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("select pg_relation_size('pgclaim.finished')"
                       " / current_setting('block_size')::int").fetchone()
    assert row is not None
    return int(row[0])


def test_a_large_table_is_swept_a_slice_per_call(conn: psycopg.Connection[Any]) -> None:
    freeze_clock(conn, NOW)
    conn.execute("select pgclaim.create_queue('big', retention => '1 day')")
    conn.execute("select pgclaim.configure(purge_limit => 100000)")
    fill_finished(conn, "big", 12000, "2 days", pad=900)
    total = finished_count(conn, "big")
    slices = -(-pages(conn) // SLICE)
    assert slices >= 2, "the table must span more than one slice"
    conn.execute("select pgclaim.reclaim_orphans()")
    after_one = finished_count(conn, "big")
    assert 0 < after_one < total, "one call reads one slice only"
    assert total - after_one <= SLICE * 8 + 8, "at most the records of 1024 pages go"
    for _ in range(slices - 1):
        conn.execute("select pgclaim.reclaim_orphans()")
    assert finished_count(conn, "big") == 0, "n calls in a row sweep a table of n slices"


def test_a_call_that_reached_the_limit_leaves_its_slice_to_the_next(
        conn: psycopg.Connection[Any]) -> None:
    """Expired records sit together (records are stored about in the order they finish):
    the calls go on in the slice where they are rather than sweep the young ones."""
    freeze_clock(conn, NOW)
    conn.execute("select pgclaim.create_queue('tail', retention => '1 day')")
    conn.execute("select pgclaim.configure(purge_limit => 100)")
    fill_finished(conn, "tail", 9000, "1 hour", pad=900)
    assert pages(conn) > SLICE, "the young records fill the first slice"
    fill_finished(conn, "tail", 3000, "2 days", pad=900)
    assert -(-pages(conn) // SLICE) == 2, "the expired ones are all in the second"
    deleted = []
    for _ in range(10):
        row = conn.execute("select count(*) from pgclaim.finished").fetchone()
        conn.execute("select pgclaim.reclaim_orphans()")
        after = conn.execute("select count(*) from pgclaim.finished").fetchone()
        assert row is not None and after is not None
        deleted.append(row[0] - after[0])
    # the first call may read the first slice (nothing to delete there); every other
    # one deletes purge_limit records from the second
    assert deleted.count(0) <= 1 and deleted.count(100) >= 9, deleted


def test_rows_others_hold_are_skipped_not_waited_for(dsn: str,
                                                     conn: psycopg.Connection[Any]) -> None:
    freeze_clock(conn, NOW)
    conn.execute("select pgclaim.create_queue('held', retention => '1 day')")
    fill_finished(conn, "held", 10, "2 days")
    with psycopg.connect(dsn) as holder:  # one transaction until the end of the block
        row = holder.execute("select id from pgclaim.finished where queue = 'held'"
                             " order by id limit 1 for update").fetchone()
        assert row is not None
        # A call that waited for that row would fail here after 2 s with 55P03.
        conn.execute("set lock_timeout = '2s'")
        conn.execute("select pgclaim.reclaim_orphans()")
        assert conn.execute("select array_agg(id) from pgclaim.finished").fetchone() == (
            [row[0]],)
        holder.rollback()
    conn.execute("select pgclaim.reclaim_orphans()")
    assert finished_count(conn, "held") == 0, "the next call takes the row once it is free"


def test_a_worker_keeps_the_retention_by_itself(dsn: str,
                                                conn: psycopg.Connection[Any]) -> None:
    """A Worker that only claims (nobody runs purge) deletes what is past retention."""
    freeze_clock(conn, NOW)
    with pgclaim.QueueClient(dsn) as client:
        client.create_queue("kept", retention=86400)
        client.create_queue("other", retention=86400 * 30)
        client.configure(purge_limit=7)
        assert conn.execute("select purge_limit from pgclaim.config").fetchone() == (7,)
        fill_finished(conn, "kept", 40, "2 days")
        fill_finished(conn, "kept", 5, "1 hour")
        fill_finished(conn, "other", 5, "2 days")
        worker = Worker(client, "kept", lambda record: None, reclaim_every=0.05,
                        poll_interval=0.05)
        thread = threading.Thread(target=worker.run)
        thread.start()
        try:
            wait_for(lambda: finished_count(conn, "kept") == 5, what="the expired records purged")
        finally:
            worker.stop()
            thread.join(timeout=30)
        assert not thread.is_alive()
    assert finished_count(conn, "other") == 5, "another queue's retention is its own"
    assert conn.execute("select count(*) from pgclaim.finished where queue = 'kept'"
                        " and finished_at < %s::timestamptz - interval '1 day'",
                        [NOW]).fetchone() == (0,)


@pytest.mark.parametrize("limit", [-1, 100001])
def test_configure_refuses_a_purge_limit_out_of_bounds(dsn: str, limit: int) -> None:
    with pgclaim.QueueClient(dsn) as client, pytest.raises(pgclaim.InvalidArgument) as info:
        client.configure(purge_limit=limit)
    assert info.value.sqlstate == "22023"
    assert str(limit) in str(info.value)
