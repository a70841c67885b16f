"""Limits, from real logins: every refusal raises its documented SQLSTATE, with a short
message, and changes nothing (the digest of pgclaim's tables is the same before and after).

Where it matters the test shows what the limit prevents: the btree error (54000) a huge
dedup_key would have raised, a lease that ends before it starts, and a server log that
does keep a huge value when an error message quotes it whole.
"""
from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from _seckit import (
    ADMIN,
    ALL_RECORDS,
    PRODUCER,
    WORKER_A,
    SecDb,
    claim,
    one,
    refused,
    server_log,
    wait_for_log,
)
from psycopg.types.json import Jsonb

MiB = 1024 * 1024


def refuse(db: SecDb, conn: psycopg.Connection[Any], sqlstate: str, sql: str,
           args: Any = None) -> psycopg.Error:
    """Runs ``sql``: it must fail with ``sqlstate``, a short message, and no change."""
    before = db.digest()
    with refused(sqlstate) as err:
        conn.execute(sql, args)
    assert db.digest() == before, f"{sql} changed something"
    message = err[0].diag.message_primary or ""
    assert len(message) < 300, message[:500]
    return err[0]


@pytest.fixture
def q(db: SecDb) -> SecDb:
    """Queue lq with the default limits and two pending records."""
    db.su.execute("select pgclaim.create_queue('lq')")
    db.enqueue("lq", 2)
    return db


def jsonb_size(db: SecDb, value: Any) -> int:
    return int(one(db.su, "select pg_catalog.pg_column_size(%s::jsonb)", (Jsonb(value),)))


def string_of_size(db: SecDb, size: int) -> str:
    """A JSON string whose jsonb takes exactly ``size`` bytes (as pgclaim measures it)."""
    overhead = jsonb_size(db, "x" * 1000) - 1000
    value = "x" * (size - overhead)
    assert jsonb_size(db, value) == size
    return value


def test_a_lease_longer_than_max_lease_is_refused(q: SecDb) -> None:
    worker = q.login(WORKER_A)
    for lease in ("100 years", "12 hours 1 second", "30 days"):
        refuse(q, worker, "22023",
               "select * from pgclaim.claim_batch('lq', 'w', 1, %s::interval)", (lease,))
    ids, tokens = claim(worker, "lq", "w", 1, lease="12 hours")  # max_lease itself is fine
    refuse(q, worker, "22023", "select pgclaim.extend_lease('w', %s, '100 years')", (ids,))
    refuse(q, worker, "22023", "select pgclaim.extend_lease('w', %s, '13 hours')", (ids,))
    assert one(worker, "select pgclaim.extend_lease('w', %s, '12 hours', %s)",
               (ids, tokens)) == 1


def test_a_mixed_sign_lease_is_refused(q: SecDb) -> None:
    """'1 mon -30 days 1 second' compares as one second, yet added to January 31st it
    ends two days earlier: every field of a duration must be positive."""
    assert one(q.su, "select '1 mon -30 days 1 second'::interval > '0'::interval "
               "and '2030-01-31 00:00+00'::timestamptz + '1 mon -30 days 1 second'::interval"
               " < '2030-01-31 00:00+00'::timestamptz")
    worker = q.login(WORKER_A)
    refuse(q, worker, "22023", "select * from pgclaim.claim_batch('lq', 'w', 1, "
           "'1 mon -30 days 1 second')")
    ids, _ = claim(worker, "lq", "w", 1)
    refuse(q, worker, "22023", "select pgclaim.extend_lease('w', %s, "
           "'1 mon -30 days 1 second')", (ids,))
    refuse(q, worker, "22023", "select pgclaim.fail('w', %s, 'x', "
           "retry_after => '1 mon -30 days 1 second')", (ids[0],))


def test_payloads_over_max_payload_bytes_are_refused(q: SecDb) -> None:
    producer = q.login(PRODUCER)
    huge = "x" * (20 * MiB)
    refuse(q, producer, "22023", "select pgclaim.enqueue('lq', %s)", (Jsonb(huge),))
    refuse(q, producer, "22023", "select pgclaim.enqueue_batch('lq', %s)",
           ([Jsonb({}), Jsonb(huge)],))
    at_limit = string_of_size(q, MiB)
    refuse(q, producer, "22023", "select pgclaim.enqueue('lq', %s)", (Jsonb(at_limit + "x"),))
    rid = one(producer, "select pgclaim.enqueue('lq', %s)", (Jsonb(at_limit),))
    assert one(q.su, "select pg_catalog.octet_length(payload #>> '{}') "
               "from pgclaim.records where id = %s", (rid,)) == len(at_limit)
    producer.execute("select pgclaim.enqueue_batch('lq', %s)", ([Jsonb(at_limit)],))


def test_a_huge_queue_name_is_cut_in_the_message_and_the_log(q: SecDb) -> None:
    producer = q.login(PRODUCER)
    chunk = uuid.uuid4().hex
    name = (chunk * (5 * MiB // len(chunk) + 1))[:5 * MiB]
    log = server_log(q.su)
    start = log.stat().st_size if log else 0
    err = refuse(q, producer, "22023", "select pgclaim.enqueue(%s, '{}')", (name,))
    assert name[:40] in (err.diag.message_primary or "")
    if log is None:
        pytest.skip("the server log is not readable from here")
    written = wait_for_log(q.su, log, start, uuid.uuid4().hex)
    assert name[:40] in written, "the refusal was not logged at all"
    assert name[:200] not in written, "the server log holds the huge value"


def test_the_log_check_catches_a_value_quoted_whole(q: SecDb) -> None:
    """An error that quotes its value whole (PostgreSQL's own input error here) puts it
    in the server log: the check above would see it."""
    producer = q.login(PRODUCER)
    log = server_log(q.su)
    if log is None:
        pytest.skip("the server log is not readable from here")
    value = (uuid.uuid4().hex * 100)[:3000]
    start = log.stat().st_size
    with refused("22P02"):
        producer.execute("select %s::pg_catalog.int4", (value,))
    assert value[:200] in wait_for_log(q.su, log, start, uuid.uuid4().hex)


def four_byte_text(n: int) -> str:
    """n characters of 4 bytes each, drawn so that they do not compress."""
    rng = random.Random(7)
    return "".join(chr(rng.randrange(0x10000, 0x10FFFF)) for _ in range(n))


def test_a_dedup_key_of_four_byte_characters_is_refused_before_the_index(q: SecDb) -> None:
    key = four_byte_text(1000)
    assert len(key.encode()) == 4000
    producer = q.login(PRODUCER)
    refuse(q, producer, "22023", "select pgclaim.enqueue('lq', '{}', dedup_key => %s)", (key,))
    # 512 bytes is the limit: 128 such characters pass
    producer.execute("select pgclaim.enqueue('lq', '{}', dedup_key => %s)", (key[:128],))
    refuse(q, producer, "22023", "select pgclaim.enqueue('lq', '{}', dedup_key => %s)",
           (key[:129],))
    # what the limit prevents: the unique index cannot hold such a key (54000)
    with refused("54000"):
        q.su.execute(
            "insert into pgclaim.records (queue, run_at, payload, max_attempts, enqueued_at,"
            " dedup_key) values ('lq', pg_catalog.now(), '{}', 1, pg_catalog.now(), %s)",
            (key,))


REPORTS_WITH_TOKENS: dict[str, Callable[[list[int], list[int | None]], tuple[str, Any]]] = {
    "complete": lambda i, t: ("select pgclaim.complete('w', %s, %s)", (i, t)),
    "release": lambda i, t: ("select pgclaim.release('w', %s, %s)", (i, t)),
    "extend_lease": lambda i, t: ("select pgclaim.extend_lease('w', %s, null, %s)", (i, t)),
    "fail_batch": lambda i, t: ("select * from pgclaim.fail_batch('w', %s, %s, %s)",
                                (i, ["x"] * len(i), t)),
}


@pytest.mark.parametrize("report", list(REPORTS_WITH_TOKENS))
def test_a_null_lease_token_is_refused(q: SecDb, report: str) -> None:
    """A null token would turn fencing off for its id: refused with 22004 (as a null id)."""
    worker = q.login(WORKER_A)
    ids, tokens = claim(worker, "lq", "w", 2)
    sql, args = REPORTS_WITH_TOKENS[report](ids, [tokens[0], None])
    refuse(q, worker, "22004", sql, args)
    sql, args = REPORTS_WITH_TOKENS[report]([ids[0], None], tokens)  # type: ignore[list-item]
    refuse(q, worker, "22004", sql, args)


def test_priority_and_max_attempts_stay_within_the_queue(db: SecDb) -> None:
    db.su.execute("select pgclaim.create_queue('lq', max_attempts => 3, min_priority => -5, "
                  "max_priority => 5, max_batch => 3)")
    producer = db.login(PRODUCER)
    for sql, args in (
        ("select pgclaim.enqueue('lq', '{}', priority => %s)", (6,)),
        ("select pgclaim.enqueue('lq', '{}', priority => %s)", (-6,)),
        ("select pgclaim.enqueue('lq', '{}', priority => %s)", (2**31 - 1,)),
        ("select pgclaim.enqueue_batch('lq', array['{}'::jsonb], priority => %s)", (6,)),
        ("select pgclaim.enqueue('lq', '{}', max_attempts => %s)", (4,)),
        ("select pgclaim.enqueue('lq', '{}', max_attempts => %s)", (0,)),
        ("select pgclaim.enqueue_batch('lq', %s)", ([Jsonb({})] * 4,)),
    ):
        refuse(db, producer, "22023", sql, args)
    refuse(db, producer, "22004", "select pgclaim.enqueue('lq', '{}', priority => null)")
    producer.execute("select pgclaim.enqueue('lq', '{}', priority => 5, max_attempts => 3)")
    producer.execute("select pgclaim.enqueue_batch('lq', %s, priority => -5)", ([Jsonb({})] * 3,))
    worker = db.login(WORKER_A)
    for size in (0, 4):
        refuse(db, worker, "22023", "select * from pgclaim.claim_batch('lq', 'w', %s)", (size,))


def test_an_error_text_of_a_megabyte_is_cut(q: SecDb) -> None:
    worker = q.login(WORKER_A)
    q.enqueue("lq", 2)
    ids, tokens = claim(worker, "lq", "w", 4)
    error = "\U0001F4A5" * (MiB // 4)  # 1 MiB of 4-byte characters
    assert one(worker, "select pgclaim.fail('w', %s, %s, lease_token => %s)",
               (ids[0], error, tokens[0])) == "pending"
    worker.execute("select * from pgclaim.fail_batch('w', %s, %s, %s)",
                   (ids[1:2], [error], tokens[1:2]))
    q.login(ADMIN).execute("select pgclaim.configure(max_error_bytes => 64)")
    worker.execute("select * from pgclaim.fail_batch('w', %s, %s, %s)",
                   (ids[2:], [error, "y" * MiB], tokens[2:]))
    kept = dict(q.rows(f"select id, last_error from {ALL_RECORDS} as r where id = any(%s)",
                       (ids,)))
    for rid, limit in zip(ids, (8192, 8192, 64, 64)):
        text = kept[rid]
        assert len(text.encode()) <= limit and text.endswith(" bytes]"), (limit, text[-60:])
        assert text.startswith(("\U0001F4A5", "y"))


def test_worker_info_over_max_info_bytes_is_refused(q: SecDb) -> None:
    worker = q.login(WORKER_A)
    at_limit = string_of_size(q, 8192)
    refuse(q, worker, "22023", "select pgclaim.register_worker('w', %s)",
           (Jsonb(at_limit + "x"),))
    refuse(q, worker, "22023", "select pgclaim.register_worker('w', %s)",
           (Jsonb({"x": "y" * MiB}),))
    refuse(q, worker, "22004", "select pgclaim.register_worker('w', null)")
    worker.execute("select pgclaim.register_worker('w', %s)", (Jsonb(at_limit),))


def test_more_ids_than_max_ids_are_refused(q: SecDb) -> None:
    q.login(ADMIN).execute("select pgclaim.configure(max_ids => 3)")
    worker = q.login(WORKER_A)
    ids, tokens = claim(worker, "lq", "w", 2)
    four = [*ids, 10**9, 10**9 + 1]
    for sql, args in (
        ("select pgclaim.complete('w', %s)", (four,)),
        ("select pgclaim.release('w', %s)", (four,)),
        ("select pgclaim.extend_lease('w', %s)", (four,)),
        ("select pgclaim.heartbeat('w', %s)", (four,)),
        ("select * from pgclaim.fail_batch('w', %s, %s)", (four, ["x"] * 4)),
        ("select pgclaim.complete('w', %s, %s)", (ids, [*tokens, 1])),
    ):
        refuse(q, worker, "22023", sql, args)
    assert one(worker, "select pgclaim.complete('w', %s, %s)", (ids, tokens)) == 2


def test_arrays_of_more_than_one_dimension_are_refused(q: SecDb) -> None:
    """A two-dimensional array (which array_position cannot search) is refused with 22023
    like any invalid value, not with an internal error."""
    worker, admin = q.login(WORKER_A), q.login(ADMIN)
    ids, tokens = claim(worker, "lq", "w", 2)
    square = [[ids[0], ids[1]], [ids[0], ids[1]]]
    square_tokens = [[tokens[0], tokens[1]], [tokens[0], tokens[1]]]
    for conn, sql, args in (
        (worker, "select pgclaim.complete('w', %s)", (square,)),
        (worker, "select pgclaim.complete('w', %s, %s)", ([*ids, *ids], square_tokens)),
        (worker, "select pgclaim.release('w', %s)", (square,)),
        (worker, "select pgclaim.extend_lease('w', %s)", (square,)),
        (worker, "select pgclaim.extend_lease('w', %s, '1 minute', %s)", (square, square_tokens)),
        (worker, "select pgclaim.heartbeat('w', %s)", (square,)),
        (worker, "select * from pgclaim.fail_batch('w', %s, %s)", (square, ["x"] * 4)),
        (admin, "select pgclaim.cancel(%s)", (square,)),
        (admin, "select pgclaim.retry_failed('lq', %s)", (square,)),
        (q.login(PRODUCER), "select pgclaim.enqueue_batch('lq', %s)",
         ([[Jsonb({}), Jsonb({})], [Jsonb({}), Jsonb({})]],)),
        (admin, "select pgclaim.grant_queue('lq', %s, %s)",
         (WORKER_A, [["claim", "read"], ["enqueue", "read"]])),
        (admin, "select pgclaim.revoke_queue('lq', %s, %s)", (WORKER_A, [["claim"], ["read"]])),
    ):
        err = refuse(q, conn, "22023", sql, args)
        assert "one dimension" in (err.diag.message_primary or ""), err
    assert one(worker, "select pgclaim.complete('w', %s, %s)", (ids, tokens)) == 2


@pytest.mark.parametrize("retry_after", ["-1 second", "1 mon -30 days 1 second", "101 years",
                                         "300000 years"])
def test_fail_batch_checks_each_retry_after_as_fail_does(q: SecDb, retry_after: str) -> None:
    """fail_batch checked only for a negative retry_after: a mixed-sign one passed, and one
    far in the future ran into 'timestamp out of range' (22008)."""
    worker = q.login(WORKER_A)
    ids, tokens = claim(worker, "lq", "w", 2)
    refuse(q, worker, "22023", "select pgclaim.fail('w', %s, 'x', %s::interval, %s)",
           (ids[0], retry_after, tokens[0]))
    err = refuse(q, worker, "22023", "select * from pgclaim.fail_batch('w', %s, %s, %s, %s)",
                 (ids, ["x", "y"], tokens, [None, retry_after]))
    assert "retry_after[2]" in (err.diag.message_primary or "")
    rows = worker.execute("select * from pgclaim.fail_batch('w', %s, %s, %s, %s)",
                          (ids, ["x", "y"], tokens, ["100 years", None])).fetchall()
    assert sorted(r[1] for r in rows) == ["pending", "pending"]


def test_an_id_given_twice_is_acted_on_once(q: SecDb) -> None:
    """Finishing moves a record to pgclaim.finished: an id twice in one call must move it
    once (it raised 23505, a duplicate key in pgclaim.finished), and count once."""
    worker, admin = q.login(WORKER_A), q.login(ADMIN)
    q.enqueue("lq", 4)
    ids, tokens = claim(worker, "lq", "w", 6)
    twice = lambda i: [ids[i], ids[i]]
    assert one(worker, "select pgclaim.extend_lease('w', %s)", (twice(0),)) == 1
    assert one(worker, "select pgclaim.complete('w', %s, %s)",
               (twice(0), [tokens[0]] * 2)) == 1
    assert one(worker, "select pgclaim.release('w', %s)", (twice(1),)) == 1
    rows = worker.execute("select * from pgclaim.fail_batch('w', %s, %s, null, null, %s)",
                          (twice(2), ["x", "y"], [True, True])).fetchall()
    assert rows == [(ids[2], "failed")]
    rows = worker.execute("select * from pgclaim.fail_batch('w', %s, %s)",
                          (twice(3), ["x", "y"])).fetchall()
    assert rows == [(ids[3], "pending")]
    assert one(admin, "select pgclaim.cancel(%s)", (twice(4),)) == 1
    assert one(admin, "select pgclaim.retry_failed('lq', %s)", (twice(2),)) == 1
    stats = admin.execute("select completed, failed, cancelled from pgclaim.queue_stats"
                          ).fetchall()
    assert stats == [(1, 0, 1)]
    assert one(q.su, f"select count(*) from {ALL_RECORDS} as r") == 6
