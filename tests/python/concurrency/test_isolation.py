"""pgclaim functions called inside a caller's transaction at each isolation level.

What a caller sees (docs/concurrency.md): under READ COMMITTED each statement sees the latest
committed state; under REPEATABLE READ and SERIALIZABLE the transaction's snapshot is taken
at its first statement, and a function that must lock or change a row that another session
changed after that snapshot fails with 40001 (serialization_failure), to be retried as a
whole. In no level does a call hand out a held record or let a stale holder report.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from pgdb import freeze_clock
from psycopg.types.json import Jsonb

pytestmark = pytest.mark.concurrent

LEVELS = ["read committed", "repeatable read", "serializable"]
SNAPSHOT_LEVELS = {"repeatable read", "serializable"}


@contextmanager
def two(dsn: str) -> Iterator[tuple[psycopg.Connection[Any], psycopg.Connection[Any]]]:
    a = psycopg.connect(dsn, autocommit=True, application_name="a")
    b = psycopg.connect(dsn, autocommit=True, application_name="b")
    try:
        yield a, b
    finally:
        a.close()
        b.close()


def begin(conn: psycopg.Connection[Any], level: str) -> None:
    """Opens a transaction at ``level`` and takes its snapshot now."""
    conn.execute(f"begin isolation level {level}")
    conn.execute("select 1")


def ids_of(conn: psycopg.Connection[Any], sql: str, args: Any = None) -> list[int]:
    return [r[0] for r in conn.execute(sql, args).fetchall()]


def one(conn: psycopg.Connection[Any], sql: str, args: Any = None) -> Any:
    row = conn.execute(sql, args).fetchone()
    assert row is not None
    return row[0]


def fill(conn: psycopg.Connection[Any], n: int) -> list[int]:
    conn.execute("select pgclaim.create_queue('q', lease => '30 seconds')")
    return ids_of(conn, "select pgclaim.enqueue_batch('q', %s)",
                  ([Jsonb({"i": i}) for i in range(n)],))


@pytest.mark.parametrize("level", LEVELS)
def test_whole_lifecycle_inside_one_transaction(dsn: str, level: str) -> None:
    with two(dsn) as (a, _b):
        a.execute("select pgclaim.create_queue('q')")
        begin(a, level)
        rid = one(a, "select pgclaim.enqueue('q', '{}')")
        rows = a.execute("select id, attempt from pgclaim.claim_batch('q', 'a', 5)").fetchall()
        assert rows == [(rid, 1)]
        assert one(a, "select pgclaim.complete('a', %s)", ([rid],)) == 1
        a.execute("commit")
        assert one(a, "select status::text from public.every_record where id = %s", (rid,)) == "completed"


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("outcome", ["commit", "rollback"])
def test_result_and_complete_commit_together(dsn: str, level: str, outcome: str) -> None:
    """A handler's own write and complete in one transaction: both or neither."""
    with two(dsn) as (a, _b):
        (rid,) = fill(a, 1)
        a.execute("create table public.results (record_id bigint primary key, out text)")
        tok = one(a, "select lease_token from pgclaim.claim_batch('q', 'a', 1)")
        begin(a, level)
        a.execute("insert into public.results values (%s, 'done')", (rid,))
        assert one(a, "select pgclaim.complete('a', %s, %s)", ([rid], [tok])) == 1
        a.execute(outcome)
        st = one(a, "select status::text from public.every_record where id = %s", (rid,))
        kept = one(a, "select count(*) from public.results")
        if outcome == "commit":
            assert (st, kept) == ("completed", 1)
        else:
            assert (st, kept) == ("running", 0)
            assert one(a, "select pgclaim.complete('a', %s, %s)", ([rid], [tok])) == 1


@pytest.mark.parametrize("level", LEVELS)
def test_claim_after_a_concurrent_claim(dsn: str, level: str) -> None:
    """B claims half of the records after A's snapshot. Under READ COMMITTED A gets the
    other half; under a snapshot level A's claim meets B's rows and fails with 40001, and
    the retried transaction gets the other half. Never a record B holds."""
    with two(dsn) as (a, b):
        ids = fill(a, 10)
        begin(a, level)
        got_b = ids_of(b, "select id from pgclaim.claim_batch('q', 'b', 5)")
        assert got_b == ids[:5]
        if level in SNAPSHOT_LEVELS:
            with pytest.raises(psycopg.errors.SerializationFailure):
                a.execute("select id from pgclaim.claim_batch('q', 'a', 10)")
            a.execute("rollback")
            begin(a, level)
        got_a = ids_of(a, "select id from pgclaim.claim_batch('q', 'a', 10)")
        a.execute("commit")
        assert got_a == ids[5:]
        holders = dict(a.execute("select id, worker_id from public.every_record").fetchall())
        assert {holders[i] for i in ids[:5]} == {"b"} and {holders[i] for i in ids[5:]} == {"a"}


@pytest.mark.parametrize("level", LEVELS)
def test_records_enqueued_after_the_snapshot(dsn: str, level: str) -> None:
    """Under a snapshot level, records committed after the snapshot are not claimable in
    that transaction (they wait for the next one); READ COMMITTED sees them at once."""
    with two(dsn) as (a, b):
        fill(a, 0)
        begin(a, level)
        new = ids_of(b, "select pgclaim.enqueue_batch('q', %s)", ([Jsonb({}), Jsonb({})],))
        got = ids_of(a, "select id from pgclaim.claim_batch('q', 'a', 10)")
        a.execute("commit")
        assert got == ([] if level in SNAPSHOT_LEVELS else new)
        assert ids_of(a, "select id from pgclaim.claim_batch('q', 'a', 10)") == (
            new if level in SNAPSHOT_LEVELS else [])


@pytest.mark.parametrize("level", LEVELS)
def test_stale_holder_is_fenced_at_every_level(dsn: str, level: str) -> None:
    """A's lease is taken back by B after A's snapshot: A's complete does nothing (0 under
    READ COMMITTED, 40001 under a snapshot level), never overwrites the new state."""
    with two(dsn) as (a, b):
        freeze_clock(a, "2030-01-01 00:00:00+00")
        (rid,) = fill(a, 1)
        tok = one(a, "select lease_token from pgclaim.claim_batch('q', 'a', 1)")
        freeze_clock(a, "2030-01-01 00:10:00+00")
        begin(a, level)
        assert one(b, "select pgclaim.reclaim_orphans()") == 1
        assert ids_of(b, "select id from pgclaim.claim_batch('q', 'b', 1)") == [rid]
        if level in SNAPSHOT_LEVELS:
            with pytest.raises(psycopg.errors.SerializationFailure):
                a.execute("select pgclaim.complete('a', %s, %s)", ([rid], [tok]))
        else:
            assert one(a, "select pgclaim.complete('a', %s, %s)", ([rid], [tok])) == 0
        a.execute("rollback")
        row = a.execute("select status::text, worker_id from public.every_record").fetchone()
        assert row == ("running", "b")


@pytest.mark.parametrize("level", LEVELS)
def test_dedup_key_taken_after_the_snapshot(dsn: str, level: str) -> None:
    """B enqueues dedup key k after A's snapshot. Under READ COMMITTED A gets B's record;
    under a snapshot level A's enqueue fails with 40001 rather than add a second record."""
    with two(dsn) as (a, b):
        fill(a, 0)
        begin(a, level)
        rid = one(b, "select pgclaim.enqueue('q', '{}', dedup_key => 'k')")
        sql = "select pgclaim.enqueue('q', '{}', dedup_key => 'k')"
        if level in SNAPSHOT_LEVELS:
            with pytest.raises(psycopg.errors.SerializationFailure):
                a.execute(sql)
            a.execute("rollback")
            begin(a, level)
        assert one(a, sql) == rid
        a.execute("commit")
        assert one(a, "select count(*) from public.every_record") == 1


def test_serializable_claimers_retry_until_done(dsn: str) -> None:
    """Two SERIALIZABLE claimers that interleave: each failure is 40001, each retry makes
    progress, and together they claim every record once."""
    with two(dsn) as (a, b):
        ids = fill(a, 20)
        got: dict[str, list[int]] = {"a": [], "b": []}
        failures = 0
        turn = 0
        while len(got["a"]) + len(got["b"]) < 20 and turn < 100:
            first, second = (a, b) if turn % 2 == 0 else (b, a)
            begin(first, "serializable")
            begin(second, "serializable")
            for conn in (first, second):
                name = conn.info.parameter_status("application_name") or "?"
                try:
                    got[name] += ids_of(conn, "select id from pgclaim.claim_batch('q', %s, 3)",
                                        (name,))
                    conn.execute("commit")
                except psycopg.errors.SerializationFailure:
                    failures += 1
                    conn.execute("rollback")
                    got[name] = ids_of(conn, "select id from public.every_record"
                                       " where worker_id = %s", (name,))
            turn += 1
        assert sorted(got["a"] + got["b"]) == ids
        assert not set(got["a"]) & set(got["b"])
        assert failures > 0, "the interleaving never conflicted"
