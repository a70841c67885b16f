"""QueueClient against a real database: every method, every typed error, caller transactions."""
from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import psycopg
import pytest
from psycopg_pool import ConnectionPool

import pgclaim
from pgclaim import errors
from pgclaim._version import required_schema_version
from pgclaim.client import as_interval, default_dsn


@pytest.fixture
def client(dsn: str) -> Iterator[pgclaim.QueueClient]:
    with pgclaim.QueueClient(dsn) as c:
        c.create_queue("q", lease=timedelta(minutes=1), max_attempts=2,
                       backoff_base=timedelta(seconds=1))
        yield c


def status_of(conn: psycopg.Connection[Any], rid: int) -> str:
    row = conn.execute("select status::text from public.every_record where id = %s", [rid]).fetchone()
    assert row is not None
    return str(row[0])


def test_queue_admin(client: pgclaim.QueueClient, conn: psycopg.Connection[Any]) -> None:
    client.create_queue("q", lease=5)  # idempotent: settings kept
    lease = conn.execute("select lease from pgclaim.queues where queue = 'q'").fetchone()
    assert lease == (timedelta(minutes=1),)
    client.alter_queue("q", lease=timedelta(seconds=30), max_attempts=3)
    row = conn.execute("select lease, max_attempts from pgclaim.queues where queue = 'q'")
    assert row.fetchone() == (timedelta(seconds=30), 3)
    client.pause_queue("q")
    client.enqueue("q", {"a": 1})
    assert client.claim("q", "w", 10) == []
    assert client.stats()[0].paused is True
    client.resume_queue("q")
    assert len(client.claim("q", "w", 10)) == 1
    with pytest.raises(pgclaim.QueueNotEmpty) as info:
        client.drop_queue("q")
    assert info.value.sqlstate == "PC004"
    assert client.drop_queue("q", force=True) == 1
    assert client.stats() == []


def test_enqueue_claim_complete(client: pgclaim.QueueClient,
                                conn: psycopg.Connection[Any]) -> None:
    first = client.enqueue("q", {"n": 1}, priority=5)
    later = client.enqueue("q", {"n": 2}, run_at=datetime.now(UTC) + timedelta(hours=1))
    assert client.enqueue("q", {"n": 3}, dedup_key="k") == client.enqueue(
        "q", {"n": 4}, dedup_key="k")
    claimed = client.claim("q", "w1", batch_size=10, lease=timedelta(seconds=30))
    assert [c.payload for c in claimed] == [{"n": 1}, {"n": 3}]
    assert claimed[0].id == first and claimed[0].attempt == 1 and claimed[0].priority == 5
    assert claimed[0].lease_token == claimed[1].lease_token
    assert client.complete("w2", [first]) == 0  # not the holder: skipped
    assert client.complete("w1", [c.id for c in claimed],
                           [c.lease_token for c in claimed]) == 2
    assert status_of(conn, first) == "completed"
    assert status_of(conn, later) == "pending"
    stats = client.stats()[0]
    assert (stats.pending, stats.scheduled, stats.completed) == (0, 1, 2)


def test_complete_and_claim_is_one_transaction(client: pgclaim.QueueClient,
                                               conn: psycopg.Connection[Any]) -> None:
    """Completes and claims in one round trip and one transaction: both or neither."""
    ids = client.enqueue_many("q", [1, 2, 3, 4, 5])
    first = client.claim("q", "w", 2)
    xid = int(conn.execute("select txid_current()").fetchone()[0])  # type: ignore[index]
    n, more = client.complete_and_claim("w", first, "q", 2, lease=timedelta(seconds=30))
    assert n == 2 and [r.id for r in more] == ids[2:4] and [r.payload for r in more] == [3, 4]
    assert [status_of(conn, i) for i in ids] == ["completed"] * 2 + ["running"] * 2 + ["pending"]
    # one transaction for both: their rows carry the same xmin
    xmins = {int(r[0]) for r in conn.execute(
        "select xmin::text from pgclaim.records where id = any(%s)", (ids[2:4],))}
    xmins |= {int(r[0]) for r in conn.execute(
        "select xmin::text from pgclaim.finished where id = any(%s)", (ids[:2],))}
    assert len(xmins) == 1 and xmins.pop() > xid
    # stale lease tokens complete nothing; the claim goes on all the same
    n, last = client.complete_and_claim("w", first, "q", 2)
    assert n == 0 and [r.id for r in last] == ids[4:]
    # the claim fails (unknown queue): the completion is rolled back with it
    with pytest.raises(pgclaim.QueueNotFound):
        client.complete_and_claim("w", more + last, "nope", 2)
    assert [status_of(conn, i) for i in ids[2:]] == ["running"] * 3
    assert client.complete_and_claim("w", more + last, "q", 5) == (3, [])
    assert [status_of(conn, i) for i in ids] == ["completed"] * 5


def test_enqueue_many_thousands_in_one_statement(client: pgclaim.QueueClient,
                                                 conn: psycopg.Connection[Any]) -> None:
    before = conn.execute(
        "select xact_commit from pg_stat_database where datname = current_database()"
    ).fetchone()
    ids = client.enqueue_many("q", [{"i": i} for i in range(5000)], priority=1)
    assert len(ids) == 5000 and ids == sorted(ids)
    assert client.enqueue_many("q", []) == []
    count = conn.execute("select count(*) from public.every_record where priority = 1").fetchone()
    assert count == (5000,)
    assert before is not None


def test_fail_extend_release_heartbeat(client: pgclaim.QueueClient,
                                       conn: psycopg.Connection[Any]) -> None:
    a, b, c = client.enqueue_many("q", [{"n": 1}, {"n": 2}, {"n": 3}])
    client.register_worker("w1", {"host": "x"})
    claimed = {r.id: r for r in client.claim("q", "w1", 3, lease=10)}
    assert client.extend_lease("w1", [a, b], lease=timedelta(minutes=10),
                               lease_tokens=[claimed[a].lease_token, 0]) == 1
    assert client.heartbeat("w1") == 3
    assert client.heartbeat("w1", [a, c]) == 2
    assert client.heartbeat("w1", []) == 0
    assert client.fail("w1", a, "boom", retry_after=timedelta(0),
                       lease_token=claimed[a].lease_token) == "pending"
    assert client.release("w1", [b], [claimed[b].lease_token]) == 1
    assert client.fail("w1", c, "bad", fatal=True) == "failed"
    row = conn.execute("select attempt, last_error from public.every_record where id = %s", [a])
    assert row.fetchone() == (1, "boom")
    assert status_of(conn, b) == "pending"
    with pytest.raises(pgclaim.NotHolder) as info:
        client.fail("w1", a, "again")
    assert info.value.sqlstate == "PC003"
    with pytest.raises(pgclaim.RecordNotFound) as info2:
        client.fail("w1", 999999, "nope")
    assert info2.value.sqlstate == "PC002"
    workers = client.workers()
    assert [w.worker_id for w in workers] == ["w1"] and workers[0].alive
    assert workers[0].info == {"host": "x"}
    again = client.claim("q", "w1", 10)
    assert {r.id for r in again} == {a, b}
    assert client.deregister_worker("w1") == 2
    assert client.workers() == []


def test_reports_take_the_claimed_records(client: pgclaim.QueueClient,
                                          conn: psycopg.Connection[Any]) -> None:
    ids = client.enqueue_many("q", [{"n": i} for i in range(7)])
    batch = client.claim("q", "w", 7, lease=10)
    assert [r.id for r in batch] == ids
    assert client.extend_lease("w", batch[:2], timedelta(minutes=10)) == 2
    assert client.extend_lease("w", batch[2:3], lease=timedelta(minutes=10)) == 1
    longer = conn.execute("select count(*) from public.every_record where lease_until"
                          " > now() + interval '9 minutes'").fetchone()
    assert longer == (3,)
    assert client.release("w", batch[2:3]) == 1
    assert status_of(conn, ids[2]) == "pending"
    assert client.fail("w", batch[3], "boom", fatal=True) == "failed"
    assert client.complete("w", batch[:2]) == 2
    assert [status_of(conn, i) for i in ids[:2]] == ["completed"] * 2
    # the id list + token list forms, positional and by keyword, still work
    assert client.complete("w", [ids[4]], [batch[4].lease_token]) == 1
    assert client.complete("w", ids=[ids[5]], lease_tokens=[batch[5].lease_token]) == 1
    assert client.release("w", ids=[ids[6]], lease_tokens=[batch[6].lease_token]) == 1
    assert client.complete("w", []) == 0
    with pytest.raises(TypeError, match="carry their lease tokens"):
        client.complete("w", batch, [r.lease_token for r in batch])  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="not a mix"):
        client.release("w", [batch[0], ids[1]])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="carries its lease token"):
        client.fail("w", batch[0], "x", lease_token=batch[0].lease_token + 1)


def test_claimed_records_fence_their_reports(client: pgclaim.QueueClient,
                                             conn: psycopg.Connection[Any]) -> None:
    client.enqueue_many("q", [1, 2])
    stale = client.claim("q", "w", 2)
    conn.execute("update pgclaim.records set lease_until = now() - interval '1 second'")
    assert client.reclaim_orphans() == 2
    fresh = client.claim("q", "w", 2)  # the same worker holds them again, under new tokens
    assert {r.id for r in fresh} == {r.id for r in stale}
    # the stale records' tokens are taken from them: every report on them is refused
    assert client.extend_lease("w", stale, 60) == 0
    assert client.release("w", stale) == 0
    assert client.complete("w", stale) == 0
    with pytest.raises(pgclaim.NotHolder):
        client.fail("w", stale[0], "late")
    assert client.complete("w", fresh) == 2


def test_report_forms_type_check(tmp_path: Path) -> None:
    mypy_api = pytest.importorskip("mypy.api")
    sample = tmp_path / "sample.py"
    sample.write_text(
        "from pgclaim import QueueClient\n"
        "c = QueueClient()\n"
        "batch = c.claim('q', 'w')\n"
        "c.complete('w', batch)\n"
        "c.complete('w', [r.id for r in batch], [r.lease_token for r in batch])\n"
        "c.complete('w', ids=[1], lease_tokens=[2])\n"
        "c.extend_lease('w', batch, 30)\n"
        "c.extend_lease('w', [1], 30, [2])\n"
        "c.release('w', batch)\n"
        "c.release('w', [1], [2])\n"
        "c.fail('w', batch[0], 'e')\n"
        "c.complete('w', batch, [1])\n"           # line 12: tokens beside records
        "c.release('w', ['1'])\n")                # line 13: not ids
    out, _, status = mypy_api.run(["--strict", "--no-incremental", "--cache-dir=/dev/null",
                                   str(sample)])
    flagged = sorted({int(line.split(":")[1]) for line in out.splitlines()
                      if line.startswith(str(sample)) and ": error:" in line})
    assert status == 1 and flagged == [12, 13], out


def test_retry_cancel_purge_reclaim(client: pgclaim.QueueClient,
                                    conn: psycopg.Connection[Any]) -> None:
    a, b, c = client.enqueue_many("q", [1, 2, 3])
    claimed = client.claim("q", "w", 1)
    client.fail("w", claimed[0].id, "x", fatal=True)
    assert client.retry_failed("q", [b]) == 0
    assert client.retry_failed("q") == 1
    assert status_of(conn, a) == "pending"
    assert client.cancel([b, 424242]) == 1
    assert client.purge("q", older_than=timedelta(0)) == 1
    assert client.purge("q") == 0
    client.claim("q", "w", 10, lease=timedelta(seconds=1))
    conn.execute("update pgclaim.records set lease_until = now() - interval '1 minute'")
    assert client.reclaim_orphans(max_records=10) == 2
    assert status_of(conn, c) == "pending"
    client.configure(worker_timeout=timedelta(seconds=30), sweep_limit=5)
    assert conn.execute("select worker_timeout, sweep_limit from pgclaim.config").fetchone() == (
        timedelta(seconds=30), 5)


def test_health_and_version(client: pgclaim.QueueClient) -> None:
    doc = client.health(max_xact_age=timedelta(days=1))  # other databases may hold long ones
    assert doc["status"] == "ok" and doc["reachable"] is True
    assert "q" in doc["queues"]
    assert client.schema_version() == required_schema_version()
    assert client.run(lambda c: c.execute("select 41 + 1").fetchone(),
                      idempotent=True) == (42,)


@pytest.mark.parametrize(("call", "cls", "state"), [
    (lambda c: c.enqueue("missing", {}), pgclaim.QueueNotFound, "PC001"),
    (lambda c: c.claim("q", "w", 0), pgclaim.InvalidArgument, "22023"),
    (lambda c: c.claim("q", "", 1), pgclaim.InvalidArgument, "22023"),
    (lambda c: c.create_queue("bad name!"), pgclaim.InvalidArgument, "22023"),
    (lambda c: c.enqueue("q", {}, priority=None), pgclaim.InvalidArgument, "22004"),
    (lambda c: c.complete(None, [1]), pgclaim.InvalidArgument, "22004"),
    (lambda c: c.fail("w", 12345, "e"), pgclaim.RecordNotFound, "PC002"),
    (lambda c: c.drop_queue("nope"), pgclaim.QueueNotFound, "PC001"),
    (lambda c: c.purge("q", older_than=-5), pgclaim.InvalidArgument, "22023"),
    (lambda c: c.run(lambda conn: conn.execute("select 1/0")), pgclaim.PgclaimError, "22012"),
])
def test_typed_errors(client: pgclaim.QueueClient, call: Any, cls: type[Exception],
                      state: str) -> None:
    with pytest.raises(cls) as info:
        call(client)
    assert isinstance(info.value, pgclaim.PgclaimError)
    assert info.value.sqlstate == state
    assert not isinstance(info.value, pgclaim.TransientError)


def test_permission_and_missing_schema(dsn: str, conn: psycopg.Connection[Any]) -> None:
    conn.execute("create role pgclaim_test_producer_b login in role pgclaim_producer")
    try:
        producer_url = dsn.replace("postgres@", "pgclaim_test_producer_b@")
        with pgclaim.QueueClient(producer_url) as producer:
            with pytest.raises(pgclaim.PermissionDenied) as info:
                producer.claim("q", "w", 1)
            assert info.value.sqlstate == "42501"
    finally:
        conn.execute("drop role pgclaim_test_producer_b")
    conn.execute("drop schema pgclaim cascade")
    with pgclaim.QueueClient(dsn) as c, pytest.raises(pgclaim.SchemaMissing):
        c.schema_version()


def test_enqueue_in_callers_transaction(client: pgclaim.QueueClient, dsn: str,
                                        conn: psycopg.Connection[Any]) -> None:
    conn.execute("create table orders (id int primary key)")
    with psycopg.connect(dsn) as mine:  # not autocommit: one transaction until commit
        mine.execute("insert into orders values (1)")
        rid = client.enqueue("q", {"order": 1}, conn=mine)
        ids = client.enqueue_many("q", [{"order": 1}], conn=mine)
        assert conn.execute("select count(*) from public.every_record").fetchone() == (0,)
        mine.rollback()
        assert conn.execute("select count(*) from public.every_record where id = any(%s)",
                            [[rid, *ids]]).fetchone() == (0,)
        mine.execute("insert into orders values (2)")
        rid = client.enqueue("q", {"order": 2}, conn=mine)
        assert client.claim("q", "w", 10) == []  # not committed: invisible
        mine.commit()
    assert [r.id for r in client.claim("q", "w", 10)] == [rid]


def test_client_on_callers_connection_and_pool(dsn: str,
                                               conn: psycopg.Connection[Any]) -> None:
    with psycopg.connect(dsn) as mine:
        c = pgclaim.QueueClient(mine)
        assert c.pool is None and c.conninfo() is None
        c.create_queue("t")
        rid = c.enqueue("t", {"x": 1})
        claimed = c.claim("t", "w", 1)
        assert c.complete("w", [rid], [claimed[0].lease_token]) == 1
        mine.rollback()  # everything above was one transaction of the caller's
        with pytest.raises(pgclaim.QueueNotFound):
            c.enqueue("t", {})
        mine.rollback()
        c.close()  # leaves the caller's connection open
        assert not mine.closed
    pool = ConnectionPool(dsn, min_size=1, max_size=2, open=True)
    try:
        with pgclaim.QueueClient(pool) as c:
            c.create_queue("p")
            assert c.enqueue_many("p", [1, 2]) != []
        assert not pool.closed  # a caller's pool stays open
        assert conn.execute("select count(*) from public.every_record").fetchone() == (2,)
    finally:
        pool.close()


def test_default_dsn_and_connection_settings(dsn: str, conn: psycopg.Connection[Any],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", dsn)
    assert default_dsn() == dsn
    with pgclaim.QueueClient(statement_timeout=12.5, lock_timeout=2,
                             tcp_user_timeout=None) as c:
        c.create_queue("env")
        got = c.run(lambda k: k.execute(
            "select current_setting('statement_timeout'), current_setting('lock_timeout'),"
            " current_setting('application_name'), current_database()").fetchone())
        assert got == ("12500ms", "2s", "pgclaim " + pgclaim.instance_id(), conn.info.dbname)
    monkeypatch.delenv("DATABASE_URL")
    assert default_dsn() == ""
    info = conn.info
    monkeypatch.setenv("PGHOST", info.host)
    monkeypatch.setenv("PGPORT", str(info.port))
    monkeypatch.setenv("PGUSER", info.user)
    monkeypatch.setenv("PGDATABASE", info.dbname)
    with pgclaim.QueueClient() as c:  # libpq's PG* variables
        assert [s.queue for s in c.stats()] == ["env"]


def test_as_interval() -> None:
    assert as_interval(None) is None
    assert as_interval(1.5) == timedelta(seconds=1.5)
    assert as_interval(timedelta(minutes=1)) == timedelta(minutes=1)
    assert errors.translate(psycopg.OperationalError("connection refused")).sqlstate is None


def test_pool_checks_only_connections_that_sat_idle(
    dsn: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    checked: list[int] = []
    real = ConnectionPool.check_connection

    def counting(conn: psycopg.Connection[Any]) -> None:
        checked.append(conn.info.backend_pid)
        real(conn)

    monkeypatch.setattr(ConnectionPool, "check_connection", staticmethod(counting))
    # The client's idle clock is a fake one the test moves: "just returned" and "idle past
    # check_idle_after" do not depend on how fast the calls run.
    now = [1000.0]
    monkeypatch.setattr(pgclaim.client, "time", SimpleNamespace(monotonic=lambda: now[0]))
    with pgclaim.QueueClient(dsn, max_size=1, check_idle_after=0.5) as client:
        assert client.pool is not None
        pool = client.pool

        def idle_for(seconds: float) -> None:
            # The pool takes a connection back in a thread of its own: wait until it is
            # back (its return time noted), then move the clock.
            deadline = time.monotonic() + 30
            while pool.get_stats().get("pool_available") != 1:
                assert time.monotonic() < deadline, "the connection never came back"
                time.sleep(0.01)
            now[0] += seconds

        client.create_queue("chk")
        first = len(checked)
        for _ in range(5):
            client.stats()
        assert len(checked) == first, "a connection just returned is lent without a probe"
        idle_for(0.7)
        client.stats()
        assert len(checked) == first + 1, "a connection idle past check_idle_after is probed"
        # A connection whose server side died while idle is replaced, not lent broken.
        with psycopg.connect(dsn, autocommit=True) as admin:
            assert admin.execute("select pg_terminate_backend(%s, 10000)",
                                 (checked[-1],)).fetchone() == (True,)
        idle_for(0.7)
        assert [s.queue for s in client.stats()] == ["chk"]


def test_pool_reconnect_delay_is_capped(dsn: str) -> None:
    from psycopg_pool.base import AttemptWithBackoff

    from pgclaim.client import _CappedAttempt

    capped = _CappedAttempt(timeout=300.0, max_delay=2.0)
    plain = AttemptWithBackoff(timeout=300.0)
    for step in range(10):
        capped.update_delay(float(step))
        plain.update_delay(float(step))
    assert capped.delay <= 2.0
    assert plain.delay > 100.0, "psycopg_pool's own backoff keeps doubling"
    with pgclaim.QueueClient(dsn, reconnect_delay_max=0.5) as client:
        assert client.pool is not None
        assert getattr(client.pool, "reconnect_delay_max", None) == 0.5


def test_latency_and_bulk_dead_letters(client: pgclaim.QueueClient,
                                       conn: psycopg.Connection[Any]) -> None:
    ids = client.enqueue_many("q", [{"n": n} for n in range(3)])
    batch = client.claim("q", "w", 3)
    client.complete("w", batch[:1])
    client.fail("w", batch[1], "KeyError: x", fatal=True)
    client.fail("w", batch[2], "timeout", fatal=True)
    lat = client.latency("q", timedelta(minutes=5))
    assert set(lat) == {"wait", "run"}
    assert lat["wait"].records == lat["run"].records == 3
    assert lat["run"].max is not None and lat["run"].buckets[-1] == (float("inf"), 3)
    assert client.retry_failed("q", error_like="Key%",
                               finished_after=datetime.now(UTC) - timedelta(hours=1)) == 1
    assert status_of(conn, batch[1].id) == "pending"
    assert client.retry_failed("q", min_attempt=2) == 0
    assert client.cancel(queue="q", error_like="Key%") == 1
    assert client.cancel([ids[2]]) == 0  # a dead letter is not cancelled by id
