"""Per-queue permissions, from real logins.

A queue without grants is open to every pgclaim role (the control: login B does everything
there). Once an admin grants ``enqueue``/``claim``/``read`` on it to login A, B gets 42501
for enqueue, enqueue_batch and claim_batch (changing nothing) and no longer sees the queue
in queue_stats, health() or stuck_records, while A does. A grant to a group role works for
its members; revoking the last grant opens the queue again; only an admin manages grants.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import psycopg
import pytest
from _seckit import (
    ADMIN,
    APP_A,
    APP_B,
    APP_C,
    GROUP,
    PRODUCER,
    WORKER_A,
    SecDb,
    claim,
    one,
    refused,
)
from pgdb import freeze_clock
from psycopg.types.json import Jsonb

T0 = datetime.fromisoformat("2030-01-01T00:00:00+00:00")
ALL = ["claim", "enqueue", "read"]


def setup_queues(db: SecDb) -> None:
    """Queues pq (to be restricted) and open, each with a stuck record (a claim whose
    lease has expired) that stuck_records lists."""
    freeze_clock(db.su, T0)
    for q in ("pq", "open"):
        db.su.execute("select pgclaim.create_queue(%s)", (q,))
        db.enqueue(q, 2)
        db.su.execute("select pgclaim.claim_batch(%s, 'w0', 1, '1 second')", (q,))
    freeze_clock(db.su, T0 + timedelta(minutes=1))


def enqueue(conn: psycopg.Connection[Any], queue: str) -> None:
    conn.execute("select pgclaim.enqueue(%s, %s)", (queue, Jsonb({})))


def enqueue_batch(conn: psycopg.Connection[Any], queue: str) -> None:
    conn.execute("select pgclaim.enqueue_batch(%s, %s)", (queue, [Jsonb({}), Jsonb({})]))


def claim_batch(conn: psycopg.Connection[Any], queue: str) -> None:
    claim(conn, queue, "w-" + str(conn.info.user), 1)


USES = (enqueue, enqueue_batch, claim_batch)


def visible(conn: psycopg.Connection[Any]) -> dict[str, set[str]]:
    """The queues a login sees in queue_stats, health() and stuck_records."""
    return {
        "queue_stats": {r[0] for r in conn.execute(
            "select queue from pgclaim.queue_stats").fetchall()},
        "health": set(one(conn, "select pgclaim.health()")["queues"]),
        "stuck_records": {r[0] for r in conn.execute(
            "select queue from pgclaim.stuck_records").fetchall()},
    }


def sees(conn: psycopg.Connection[Any], queue: str) -> bool:
    """Whether the login sees the queue, in queue_stats and health() alike (and in
    stuck_records, while the queue's stuck record has not been swept by a claim)."""
    seen = visible(conn)
    assert (queue in seen["queue_stats"]) == (queue in seen["health"]), seen
    if queue in seen["stuck_records"]:
        assert queue in seen["queue_stats"], seen
    return queue in seen["queue_stats"]


def assert_refused(db: SecDb, conn: psycopg.Connection[Any], queue: str) -> None:
    for use in USES:
        before = db.digest()
        with refused("42501"):
            use(conn, queue)
        assert db.digest() == before, use.__name__


def test_grants_restrict_a_queue_to_the_granted_login(db: SecDb) -> None:
    setup_queues(db)
    a, b, admin = db.login(APP_A), db.login(APP_B), db.login(ADMIN)
    # no grants: open to every pgclaim role
    assert visible(b) == {k: {"pq", "open"} for k in ("queue_stats", "health", "stuck_records")}
    for use in USES:
        use(b, "pq")

    setup_queues(db)  # the stuck record again (B's claim took it back)
    assert one(admin, "select pgclaim.grant_queue('pq', %s, %s)", (APP_A, ALL)) == ALL
    assert visible(b) == {k: {"open"} for k in ("queue_stats", "health", "stuck_records")}
    assert visible(a) == {k: {"pq", "open"} for k in ("queue_stats", "health", "stuck_records")}
    assert visible(admin) == visible(a)
    # health()'s own count of stuck records follows what the caller may read
    for conn, queues in ((b, ["open"]), (a, ["open", "pq"])):
        assert one(conn, "select pgclaim.health()")["stuck_records"] == one(
            db.su, "select count(*) from pgclaim.stuck_records where queue = any(%s)", (queues,))
    assert_refused(db, b, "pq")
    for use in USES:
        use(b, "open")
        use(a, "pq")


def test_each_privilege_alone(db: SecDb) -> None:
    setup_queues(db)
    a, admin = db.login(APP_A), db.login(ADMIN)
    admin.execute("select pgclaim.grant_queue('pq', %s, array['read'])", (APP_A,))
    assert sees(a, "pq")
    assert_refused(db, a, "pq")
    admin.execute("select pgclaim.grant_queue('pq', %s, array['enqueue'])", (APP_A,))
    enqueue(a, "pq")
    enqueue_batch(a, "pq")
    with refused("42501"):
        claim_batch(a, "pq")
    admin.execute("select pgclaim.grant_queue('pq', %s, array['claim'])", (APP_A,))
    admin.execute("select pgclaim.revoke_queue('pq', %s, array['read', 'enqueue'])", (APP_A,))
    claim_batch(a, "pq")
    assert not sees(a, "pq")


def test_a_grant_to_a_group_role_works_for_its_members(db: SecDb) -> None:
    setup_queues(db)
    a, b, c = db.login(APP_A), db.login(APP_B), db.login(APP_C)
    db.login(ADMIN).execute("select pgclaim.grant_queue('pq', %s, %s)", (GROUP, ALL))
    assert visible(c)["stuck_records"] == {"pq", "open"}
    for other in (a, b):
        assert visible(other)["stuck_records"] == {"open"}
        assert not sees(other, "pq")
        assert_refused(db, other, "pq")
    for use in USES:
        use(c, "pq")
    assert sees(c, "pq")


def test_revoking_the_last_grant_opens_the_queue_again(db: SecDb) -> None:
    setup_queues(db)
    a, b, admin = db.login(APP_A), db.login(APP_B), db.login(ADMIN)
    admin.execute("select pgclaim.grant_queue('pq', %s, %s)", (APP_A, ALL))
    ids, tokens = claim(a, "pq", "wa", 1)
    assert one(admin, "select pgclaim.revoke_queue('pq', %s, array['claim'])",
               (APP_A,)) == ["enqueue", "read"]
    assert_refused(db, b, "pq")
    with refused("42501"):
        claim_batch(a, "pq")
    # what A already holds stays A's to report on
    assert one(a, "select pgclaim.complete('wa', %s, %s)", (ids, tokens)) == 1
    assert one(admin, "select pgclaim.revoke_queue('pq', %s, array['enqueue', 'read'])",
               (APP_A,)) == []
    for use in USES:
        use(b, "pq")
    assert sees(b, "pq")
    assert one(admin, "select count(*) from pgclaim.queue_permissions") == 0


@pytest.mark.parametrize("login", [PRODUCER, WORKER_A, APP_A])
def test_only_an_admin_manages_grants(db: SecDb, login: str) -> None:
    setup_queues(db)
    admin = db.login(ADMIN)
    admin.execute("select pgclaim.grant_queue('pq', %s, array['read'])", (APP_B,))
    conn = db.login(login)
    before = db.digest()
    for sql in ("select pgclaim.grant_queue('pq', %s, array['enqueue', 'claim', 'read'])",
                "select pgclaim.revoke_queue('pq', %s, array['read'])"):
        with refused("42501"):
            conn.execute(sql, (login,))
        with refused("42501"):
            conn.execute(sql, (APP_B,))
    with refused("42501"):
        conn.execute("select * from pgclaim.queue_permissions")
    assert db.digest() == before
    rows = admin.execute("select queue, role, privileges from pgclaim.queue_permissions"
                         ).fetchall()
    assert rows == [("pq", APP_B, ["read"])]
