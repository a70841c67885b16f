"""A worker touches only what it holds.

Worker login B knows everything about worker login A's work: its worker id, its record ids,
even its lease tokens. Every report B makes on them changes nothing (array reports return
0, ``fail`` raises PC003 without naming A's role or token, the worker-id calls raise PC005),
checked against the whole database's digest; the same calls made by A do work (so the
arguments were valid and the refusal is B's identity). Under SET ROLE a login that is a
member of two worker roles is each of them in turn. Lease tokens are not guessable from
one another, and a record whose worker never registered still comes back by its lease.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from itertools import pairwise

import psycopg
from _seckit import (
    ADMIN,
    ALL_RECORDS,
    DUAL,
    TEAM_X,
    TEAM_Y,
    WORKER_A,
    WORKER_B,
    SecDb,
    claim,
    error_text,
    one,
    refused,
)
from pgdb import freeze_clock
from psycopg.types.json import Jsonb

T0 = datetime.fromisoformat("2030-01-01T00:00:00+00:00")


def worker_ids(conn: psycopg.Connection) -> list[str]:
    return sorted(r[0] for r in conn.execute(
        "select worker_id from pgclaim.worker_status").fetchall())


def test_another_worker_role_changes_nothing(db: SecDb) -> None:
    freeze_clock(db.su, T0)  # so that B's own heartbeat below changes nothing either
    db.su.execute("select pgclaim.create_queue('hq')")
    db.enqueue("hq", 4)
    a, b = db.login(WORKER_A), db.login(WORKER_B)
    a.execute("select pgclaim.register_worker('wa', '{\"host\": \"a\"}')")
    b.execute("select pgclaim.register_worker('wb')")
    ids, tokens = claim(a, "hq", "wa", 3)
    before = {rid: db.record(rid) for rid in ids}
    worker_before = db.rows("select w.* from pgclaim.workers as w where worker_id = 'wa'")
    digest = db.digest()

    # the array reports skip what B does not hold: 0 changed, with or without A's tokens
    for sql, args in (
        ("select pgclaim.complete('wa', %s, %s)", (ids, tokens)),
        ("select pgclaim.complete('wa', %s)", (ids,)),
        ("select pgclaim.release('wa', %s, %s)", (ids, tokens)),
        ("select pgclaim.release('wa', %s)", (ids,)),
        ("select pgclaim.extend_lease('wa', %s, '1 hour', %s)", (ids, tokens)),
        ("select pgclaim.extend_lease('wa', %s)", (ids,)),
        ("select pgclaim.heartbeat('wb', %s)", (ids,)),
        ("select pgclaim.reclaim_orphans()", None),
        ("select count(*) from pgclaim.fail_batch('wa', %s, %s, %s)",
         (ids, ["x"] * 3, tokens)),
        ("select count(*) from pgclaim.fail_batch('wa', %s, %s, %s, null, %s)",
         (ids, ["x"] * 3, tokens, [True] * 3)),
    ):
        assert one(b, sql, args) == 0, sql
    # fail raises PC003 and names neither A's role nor A's token
    for fatal in (False, True):
        for token in (tokens[0], None):
            with refused("PC003") as err:
                b.execute("select pgclaim.fail('wa', %s, 'x', lease_token => %s, fatal => %s)",
                          (ids[0], token, fatal))
            text = error_text(err[0])
            assert WORKER_A not in text and str(tokens[0]) not in text, text
    # A's worker id is A's: B may not heartbeat, re-register or deregister it
    for sql, args in (
        ("select pgclaim.heartbeat('wa')", None),
        ("select pgclaim.heartbeat('wa', %s)", (ids,)),
        ("select pgclaim.deregister_worker('wa')", None),
        ("select pgclaim.register_worker('wa')", None),
        ("select pgclaim.register_worker('wa', %s)", (Jsonb({"host": "b"}),)),
    ):
        with refused("PC005") as err:
            b.execute(sql, args)
        assert WORKER_A not in error_text(err[0])
    assert {rid: db.record(rid) for rid in ids} == before
    assert db.rows("select w.* from pgclaim.workers as w where worker_id = 'wa'") == worker_before
    assert db.digest() == digest, "a call of B's changed something"

    # B sees only its own workers, A only its own
    assert worker_ids(b) == ["wb"]
    assert worker_ids(a) == ["wa"]

    # the same calls from A, the holder, do work: the refusals were B's identity
    assert one(a, "select pgclaim.extend_lease('wa', %s, '1 hour', %s)", (ids, tokens)) == 3
    assert one(a, "select pgclaim.heartbeat('wa', %s)", (ids,)) == 3
    assert one(a, "select pgclaim.fail('wa', %s, 'x', lease_token => %s)",
               (ids[0], tokens[0])) == "pending"
    assert one(a, "select count(*) from pgclaim.fail_batch('wa', %s, %s, %s)",
               (ids[1:2], ["x"], tokens[1:2])) == 1
    assert one(a, "select pgclaim.complete('wa', %s, %s)", (ids[2:], tokens[2:])) == 1
    assert one(a, "select pgclaim.deregister_worker('wa')") == 0


def test_an_admin_login_may_report_on_any_record(db: SecDb) -> None:
    db.su.execute("select pgclaim.create_queue('hq')")
    db.enqueue("hq", 3)
    a, admin = db.login(WORKER_A), db.login(ADMIN)
    a.execute("select pgclaim.register_worker('wa')")
    ids, tokens = claim(a, "hq", "wa", 3)
    assert one(admin, "select pgclaim.heartbeat('wa', %s)", (ids,)) == 3
    assert one(admin, "select pgclaim.fail('wa', %s, 'by admin', lease_token => %s)",
               (ids[0], tokens[0])) == "pending"
    assert one(admin, "select pgclaim.complete('wa', %s, %s)", (ids[1:], tokens[1:])) == 2
    assert "wa" in worker_ids(admin)
    assert [r[0] for r in db.rows(f"select status::text from {ALL_RECORDS} as r "
                                  "where id = any(%s) order by id", (ids,))] == [
        "pending", "completed", "completed"]


def test_set_role_claims_as_one_role_and_cannot_report_as_the_other(db: SecDb) -> None:
    db.su.execute("select pgclaim.create_queue('hq')")
    db.enqueue("hq", 2)
    dual = db.login(DUAL)
    dual.execute(f"set role {TEAM_X}")
    dual.execute("select pgclaim.register_worker('wd')")
    ids, tokens = claim(dual, "hq", "wd", 2)
    holder = db.rows("select distinct holder_role::regrole::text from pgclaim.records "
                     "where id = any(%s)", (ids,))
    assert holder == [(TEAM_X,)]
    digest = db.digest()

    dual.execute(f"set role {TEAM_Y}")
    assert one(dual, "select pgclaim.complete('wd', %s, %s)", (ids, tokens)) == 0
    assert one(dual, "select pgclaim.extend_lease('wd', %s)", (ids,)) == 0
    assert one(dual, "select pgclaim.release('wd', %s, %s)", (ids, tokens)) == 0
    with refused("PC003"):
        dual.execute("select pgclaim.fail('wd', %s, 'x', lease_token => %s)",
                     (ids[0], tokens[0]))
    with refused("PC005"):
        dual.execute("select pgclaim.heartbeat('wd')")
    assert worker_ids(dual) == []
    # the login itself (no SET ROLE) is a third identity
    dual.execute("reset role")
    assert one(dual, "select pgclaim.complete('wd', %s, %s)", (ids, tokens)) == 0
    assert db.digest() == digest

    dual.execute(f"set role {TEAM_X}")
    assert worker_ids(dual) == ["wd"]
    assert one(dual, "select pgclaim.complete('wd', %s, %s)", (ids, tokens)) == 2


def unpredictable(tokens: list[int]) -> list[str]:
    """Why a series of lease tokens could be guessed from one another (empty: it could not):
    a repeat, an order, a constant step, or one of the 64 bits that never changes."""
    reasons = []
    if len(set(tokens)) != len(tokens):
        reasons.append("a token repeats")
    if tokens == sorted(tokens) or tokens == sorted(tokens, reverse=True):
        reasons.append("tokens are monotonic")
    if len({b - a for a, b in pairwise(tokens)}) == 1:
        reasons.append("tokens grow by a constant step")
    fixed = [bit for bit in range(64) if len({(t >> bit) & 1 for t in tokens}) == 1]
    if fixed:
        reasons.append(f"bits {fixed} never change")
    return reasons


def claim_one_by_one(db: SecDb, n: int) -> list[int]:
    db.su.execute("select pgclaim.create_queue('tok')")
    db.su.execute("select pgclaim.enqueue_batch('tok', array_fill('{}'::jsonb, array[%s]))",
                  (n,))
    a = db.login(WORKER_A)
    return [claim(a, "tok", "wa", 1)[1][0] for _ in range(n)]


def test_lease_tokens_are_not_a_sequence(db: SecDb) -> None:
    """200 claims: 200 distinct tokens in no order, each of the 64 bits varying (a chance
    failure would need 200 random 64-bit values to share a bit or fall in order: about
    2^-190). One claim gives one token to its whole batch."""
    tokens = claim_one_by_one(db, 200)
    assert unpredictable(tokens) == []
    db.enqueue("tok", 3)
    _, batch = claim(db.login(WORKER_A), "tok", "wa", 3)
    assert len(set(batch)) == 1


def test_the_token_check_catches_a_sequence(db: SecDb) -> None:
    """The same check flags tokens drawn from a sequence (as release 0.1.0 drew them)."""
    db.su.execute("create sequence pgclaim.t_token_seq owned by none; "
                  "alter sequence pgclaim.t_token_seq owner to pgclaim_owner")
    db.su.execute(
        "create or replace function pgclaim._lease_token() returns bigint language sql "
        "volatile set search_path = pg_catalog, pg_temp as "
        "$fn$ select pg_catalog.nextval('pgclaim.t_token_seq') $fn$")
    tokens = claim_one_by_one(db, 20)
    assert "tokens are monotonic" in unpredictable(tokens)


def test_a_record_of_a_worker_that_never_registered_comes_back_by_lease(db: SecDb) -> None:
    freeze_clock(db.su, T0)
    db.su.execute("select pgclaim.create_queue('hq')")
    (rid,) = db.enqueue("hq", 1)
    a, b = db.login(WORKER_A), db.login(WORKER_B)
    claim(a, "hq", "ghost", 1, lease="1 minute")
    assert db.rows("select 1 from pgclaim.workers where worker_id = 'ghost'") == []

    freeze_clock(db.su, T0 + timedelta(seconds=59))
    assert one(b, "select pgclaim.reclaim_orphans()") == 0
    assert claim(b, "hq", "wb", 1)[0] == []

    freeze_clock(db.su, T0 + timedelta(seconds=61))
    assert db.rows("select id, reason from pgclaim.stuck_records") == [(rid, "lease expired")]
    assert one(b, "select pgclaim.reclaim_orphans()") == 1
    status, attempt = db.rows("select status::text, attempt from pgclaim.records")[0]
    assert (status, attempt) == ("pending", 1)
    assert claim(b, "hq", "wb", 1)[0] == [rid]


def test_squatting_a_worker_id_takes_nothing_away(db: SecDb) -> None:
    """B registers a worker id first and falls silent; A's records claimed under that id
    are not B's to lose. A's own silent worker does lose its records (the control)."""
    freeze_clock(db.su, T0)
    db.su.execute("select pgclaim.create_queue('hq', lease => '1 hour')")
    db.enqueue("hq", 4)
    a, b = db.login(WORKER_A), db.login(WORKER_B)
    b.execute("select pgclaim.register_worker('squat')")
    with refused("PC005"):
        a.execute("select pgclaim.register_worker('squat')")
    squatted, _ = claim(a, "hq", "squat", 2)
    a.execute("select pgclaim.register_worker('wa')")
    own, _ = claim(a, "hq", "wa", 2)
    # worker_status counts for each worker id only the records of its own role: B does
    # not learn how many records A holds under B's worker id
    held = "select worker_id, held from pgclaim.worker_status"
    assert dict(b.execute(held).fetchall()) == {"squat": 0}
    assert dict(a.execute(held).fetchall()) == {"wa": 2}

    freeze_clock(db.su, T0 + timedelta(minutes=5))  # both ids silent past worker_timeout
    assert one(b, "select pgclaim.reclaim_orphans()") == 2
    status = dict(db.rows("select id, status::text from pgclaim.records"))
    assert [status[i] for i in squatted] == ["running", "running"]
    assert [status[i] for i in own] == ["pending", "pending"]
    assert one(b, "select pgclaim.deregister_worker('squat')") == 0
    assert [dict(db.rows("select id, status::text from pgclaim.records"))[i]
            for i in squatted] == ["running", "running"]
