"""AsyncQueueClient against a real database, as test_client.py tests QueueClient: every
method, every typed error, caller transactions and pools, the pool's idle check; and its
retries, as test_retry.py tests the blocking client's (the same fake statements, then a real
server)."""
from __future__ import annotations

import asyncio
import inspect
import logging
import re
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import psycopg
import pytest
from pgdb import freeze_clock
from psycopg_pool import AsyncConnectionPool
from test_retry import FAST, Fake, pg_error

import pgclaim
from pgclaim import AsyncQueueClient, QueueClient
from pgclaim._version import required_schema_version
from pgclaim.retry import RetryPolicy, acall_with_retry

Body = Callable[[AsyncQueueClient], Awaitable[None]]


def run(dsn: str, body: Body, **settings: Any) -> None:
    """Runs ``body`` with a client of the fresh database that has queue ``q`` (as
    test_client.py's fixture makes it), in an event loop of its own."""
    async def main() -> None:
        async with AsyncQueueClient(dsn, **settings) as c:
            await c.create_queue("q", lease=timedelta(minutes=1), max_attempts=2,
                                 backoff_base=timedelta(seconds=1))
            await body(c)
    asyncio.run(main())


def status_of(conn: psycopg.Connection[Any], rid: int) -> str:
    row = conn.execute("select status::text from public.every_record where id = %s",
                       [rid]).fetchone()
    assert row is not None
    return str(row[0])


# -- the surface ----------------------------------------------------------------------------

def public_methods(cls: type) -> dict[str, Any]:
    return {name: member for name, member in inspect.getmembers(cls, inspect.isfunction)
            if not name.startswith("_")}


def test_same_methods_and_parameters_as_queue_client() -> None:
    sync, aio = public_methods(QueueClient), public_methods(AsyncQueueClient)
    assert set(aio) == set(sync) | {"open"}
    for name, method in sync.items():
        mine = inspect.signature(aio[name]).parameters
        theirs = inspect.signature(method).parameters
        assert list(mine) == list(theirs), name
        for p in theirs:
            assert (mine[p].kind, mine[p].default) == (theirs[p].kind, theirs[p].default), \
                f"{name}({p})"
        if name not in ("close", "open", "conninfo"):
            assert inspect.iscoroutinefunction(aio[name]), name
        assert aio[name].__doc__, f"{name} has no docstring"
    assert inspect.signature(AsyncQueueClient).parameters.keys() == \
        inspect.signature(QueueClient).parameters.keys()


def test_every_method_is_exercised_here() -> None:
    """Every public method of AsyncQueueClient is awaited somewhere in this module."""
    text = Path(__file__).read_text()
    called = set(re.findall(r"await (?:c|client|producer)\.([a-z_]+)\(", text))
    if "async with AsyncQueueClient(" in text:  # opens and closes it
        called |= {"open", "close"}
    missing = set(public_methods(AsyncQueueClient)) - called - {"conninfo"}
    assert not missing, f"not exercised: {sorted(missing)}"


# -- every method against the database ------------------------------------------------------

def test_queue_admin(dsn: str, conn: psycopg.Connection[Any]) -> None:
    async def body(c: AsyncQueueClient) -> None:
        await c.create_queue("q", lease=5)  # idempotent: settings kept
        lease = conn.execute("select lease from pgclaim.queues where queue = 'q'").fetchone()
        assert lease == (timedelta(minutes=1),)
        await c.alter_queue("q", lease=timedelta(seconds=30), max_attempts=3)
        row = conn.execute("select lease, max_attempts from pgclaim.queues where queue = 'q'")
        assert row.fetchone() == (timedelta(seconds=30), 3)
        await c.pause_queue("q")
        await c.enqueue("q", {"a": 1})
        assert await c.claim("q", "w", 10) == []
        assert (await c.stats())[0].paused is True
        await c.resume_queue("q")
        assert len(await c.claim("q", "w", 10)) == 1
        with pytest.raises(pgclaim.QueueNotEmpty) as info:
            await c.drop_queue("q")
        assert info.value.sqlstate == "PC004"
        assert await c.drop_queue("q", force=True) == 1
        assert await c.stats() == []
    run(dsn, body)


def test_enqueue_claim_complete(dsn: str, conn: psycopg.Connection[Any]) -> None:
    async def body(c: AsyncQueueClient) -> None:
        first = await c.enqueue("q", {"n": 1}, priority=5)
        later = await c.enqueue("q", {"n": 2}, run_at=datetime.now(UTC) + timedelta(hours=1))
        assert await c.enqueue("q", {"n": 3}, dedup_key="k") == await c.enqueue(
            "q", {"n": 4}, dedup_key="k")
        claimed = await c.claim("q", "w1", batch_size=10, lease=timedelta(seconds=30))
        assert [r.payload for r in claimed] == [{"n": 1}, {"n": 3}]
        assert claimed[0].id == first and claimed[0].attempt == 1 and claimed[0].priority == 5
        assert claimed[0].lease_token == claimed[1].lease_token
        assert isinstance(claimed[0].enqueued_at, datetime)
        assert await c.complete("w2", [first]) == 0  # not the holder: skipped
        assert await c.complete("w1", [r.id for r in claimed],
                                [r.lease_token for r in claimed]) == 2
        assert status_of(conn, first) == "completed"
        assert status_of(conn, later) == "pending"
        stats = (await c.stats())[0]
        assert (stats.pending, stats.scheduled, stats.completed) == (0, 1, 2)
    run(dsn, body)


def test_complete_and_claim_is_one_transaction(dsn: str,
                                               conn: psycopg.Connection[Any]) -> None:
    async def body(c: AsyncQueueClient) -> None:
        ids = await c.enqueue_many("q", [1, 2, 3, 4, 5])
        first = await c.claim("q", "w", 2)
        xid = int(conn.execute("select txid_current()").fetchone()[0])  # type: ignore[index]
        n, more = await c.complete_and_claim("w", first, "q", 2, lease=timedelta(seconds=30))
        assert n == 2 and [r.id for r in more] == ids[2:4] and [r.payload for r in more] == [3, 4]
        assert [status_of(conn, i) for i in ids] == ["completed"] * 2 + ["running"] * 2 + [
            "pending"]
        xmins = {int(r[0]) for r in conn.execute(
            "select xmin::text from pgclaim.records where id = any(%s)", (ids[2:4],))}
        xmins |= {int(r[0]) for r in conn.execute(
            "select xmin::text from pgclaim.finished where id = any(%s)", (ids[:2],))}
        assert len(xmins) == 1 and xmins.pop() > xid  # one transaction for both
        n, last = await c.complete_and_claim("w", first, "q", 2)  # stale tokens
        assert n == 0 and [r.id for r in last] == ids[4:]
        with pytest.raises(pgclaim.QueueNotFound):  # the claim fails: both roll back
            await c.complete_and_claim("w", more + last, "nope", 2)
        assert [status_of(conn, i) for i in ids[2:]] == ["running"] * 3
        assert await c.complete_and_claim("w", more + last, "q", 5) == (3, [])
        assert [status_of(conn, i) for i in ids] == ["completed"] * 5
    run(dsn, body)


def test_enqueue_many_thousands_in_one_statement(dsn: str,
                                                 conn: psycopg.Connection[Any]) -> None:
    async def body(c: AsyncQueueClient) -> None:
        ids = await c.enqueue_many("q", [{"i": i} for i in range(5000)], priority=1)
        assert len(ids) == 5000 and ids == sorted(ids)
        assert await c.enqueue_many("q", []) == []
        assert conn.execute("select count(*) from public.every_record where priority = 1"
                            ).fetchone() == (5000,)
    run(dsn, body)


def test_fail_extend_release_heartbeat(dsn: str, conn: psycopg.Connection[Any]) -> None:
    async def body(c: AsyncQueueClient) -> None:
        a, b, d = await c.enqueue_many("q", [{"n": 1}, {"n": 2}, {"n": 3}])
        await c.register_worker("w1", {"host": "x"})
        claimed = {r.id: r for r in await c.claim("q", "w1", 3, lease=10)}
        assert await c.extend_lease("w1", [a, b], lease=timedelta(minutes=10),
                                    lease_tokens=[claimed[a].lease_token, 0]) == 1
        assert await c.heartbeat("w1") == 3
        assert await c.heartbeat("w1", [a, d]) == 2
        assert await c.fail("w1", a, "boom", retry_after=timedelta(0),
                            lease_token=claimed[a].lease_token) == "pending"
        assert await c.release("w1", [b], [claimed[b].lease_token]) == 1
        assert await c.fail("w1", d, "bad", fatal=True) == "failed"
        row = conn.execute("select attempt, last_error from public.every_record where id = %s",
                           [a])
        assert row.fetchone() == (1, "boom")
        with pytest.raises(pgclaim.NotHolder) as info:
            await c.fail("w1", a, "again")
        assert info.value.sqlstate == "PC003"
        with pytest.raises(pgclaim.RecordNotFound):
            await c.fail("w1", 999999, "nope")
        workers = await c.workers()
        assert [w.worker_id for w in workers] == ["w1"] and workers[0].info == {"host": "x"}
        assert {r.id for r in await c.claim("q", "w1", 10)} == {a, b}
        assert await c.deregister_worker("w1") == 2
        assert await c.workers() == []
    run(dsn, body)


def test_reports_take_the_claimed_records_and_fence(dsn: str,
                                                    conn: psycopg.Connection[Any]) -> None:
    async def body(c: AsyncQueueClient) -> None:
        ids = await c.enqueue_many("q", [{"n": i} for i in range(5)])
        batch = await c.claim("q", "w", 5, lease=10)
        assert await c.extend_lease("w", batch[:2], timedelta(minutes=10)) == 2
        assert await c.release("w", batch[2:3]) == 1
        statuses = await c.fail_batch("w", batch[3:5], ["e1", "e2"], fatal=[True, False],
                                      retry_after=[None, 0])
        assert statuses == {ids[3]: "failed", ids[4]: "pending"}
        assert await c.complete("w", batch[:2]) == 2
        with pytest.raises(TypeError, match="carry their lease tokens"):
            await c.complete("w", batch, [r.lease_token for r in batch])  # type: ignore[call-overload]
        with pytest.raises(ValueError, match="one error"):
            await c.fail_batch("w", batch, ["only one"])
        # stale tokens: a record claimed again under a new token refuses the old one
        again = await c.claim("q", "w", 5)
        assert {r.id for r in again} == {ids[2], ids[4]}
        conn.execute("update pgclaim.records set lease_until = now() - interval '1 second'")
        assert await c.reclaim_orphans() == 2  # ids[4] was on its last attempt: failed
        fresh = await c.claim("q", "w", 5)
        assert [r.id for r in fresh] == [ids[2]]
        assert await c.complete("w", again) == 0
        assert await c.complete("w", fresh) == 1
    run(dsn, body)


def test_report_forms_type_check(tmp_path: Path) -> None:
    mypy_api = pytest.importorskip("mypy.api")
    sample = tmp_path / "sample.py"
    sample.write_text(
        "from pgclaim import AsyncQueueClient\n"
        "async def f(c: AsyncQueueClient) -> None:\n"
        "    batch = await c.claim('q', 'w')\n"
        "    await c.complete('w', batch)\n"
        "    await c.complete('w', [r.id for r in batch], [r.lease_token for r in batch])\n"
        "    await c.extend_lease('w', batch, 30)\n"
        "    await c.release('w', [1], [2])\n"
        "    n: int = await c.enqueue('q', {})\n"
        "    await c.complete('w', batch, [1])\n"      # line 9: tokens beside records
        "    s: str = await c.stats()\n")              # line 10: not a str
    out, _, status = mypy_api.run(["--strict", "--no-incremental", "--cache-dir=/dev/null",
                                   str(sample)])
    flagged = sorted({int(line.split(":")[1]) for line in out.splitlines()
                      if line.startswith(str(sample)) and ": error:" in line})
    assert status == 1 and flagged == [9, 10], out


def test_retry_cancel_purge_reclaim_configure(dsn: str, conn: psycopg.Connection[Any]) -> None:
    async def body(c: AsyncQueueClient) -> None:
        a, b, d = await c.enqueue_many("q", [1, 2, 3])
        claimed = await c.claim("q", "w", 1)
        await c.fail("w", claimed[0].id, "x", fatal=True)
        assert await c.retry_failed("q", [b]) == 0
        assert await c.retry_failed("q") == 1
        assert status_of(conn, a) == "pending"
        assert await c.cancel([b, 424242]) == 1
        assert await c.purge("q", older_than=timedelta(0)) == 1
        assert await c.purge("q") == 0
        await c.claim("q", "w", 10, lease=timedelta(seconds=1))
        conn.execute("update pgclaim.records set lease_until = now() - interval '1 minute'")
        assert await c.reclaim_orphans(max_records=10) == 2
        assert status_of(conn, d) == "pending"
        await c.configure(worker_timeout=timedelta(seconds=30), sweep_limit=5)
        assert conn.execute("select worker_timeout, sweep_limit from pgclaim.config"
                            ).fetchone() == (timedelta(seconds=30), 5)
    run(dsn, body)


def test_latency_dead_letters_metrics_and_stuck(dsn: str, conn: psycopg.Connection[Any]) -> None:
    async def body(c: AsyncQueueClient) -> None:
        ids = await c.enqueue_many("q", [{"n": n} for n in range(4)])
        batch = await c.claim("q", "w", 3)
        await c.complete("w", batch[:1])
        await c.fail("w", batch[1], "KeyError: x", fatal=True)
        await c.fail("w", batch[2], "timeout", fatal=True)
        lat = await c.latency("q", timedelta(minutes=5))
        assert set(lat) == {"wait", "run"} and lat["run"].records == 3
        assert lat["run"].buckets[-1] == (float("inf"), 3)
        letters = await c.dead_letters("q")
        assert [d.id for d in letters] == [ids[2], ids[1]]  # newest first
        assert letters[1].last_error == "KeyError: x"
        metrics = {(m.metric, m.queue, m.status): m.value for m in await c.metrics()}
        assert metrics[("dead_letters_total", "q", None)] == 2.0
        assert metrics[("records", "q", "pending")] == 1.0
        assert await c.retry_failed("q", error_like="Key%",
                                    finished_after=datetime.now(UTC) - timedelta(hours=1)) == 1
        assert await c.cancel(queue="q", error_like="Key%") == 1
        assert await c.stuck_records() == []
        running = await c.claim("q", "w", 1)
        freeze_clock(conn, "2100-01-01 00:00:00+00")  # its lease long expired
        [stuck] = await c.stuck_records()
        assert (stuck.id, stuck.reason) == (running[0].id, "lease expired")
        assert status_of(conn, ids[3]) == "running"
    run(dsn, body)


def test_flow_items_next_eligible_and_schedules(dsn: str, conn: psycopg.Connection[Any]) -> None:
    async def body(c: AsyncQueueClient) -> None:
        await c.create_queue("flow", max_running=2, rate=100, burst=10,
                             dedup_window=timedelta(minutes=5))
        assert await c.next_eligible("flow") is None
        created = await c.enqueue_items("flow", [
            {"payload": {"n": 1}, "group_key": "g", "dedup_key": "one"},
            {"payload": {"n": 2}, "group_key": "g", "priority": 3, "max_attempts": 1},
            {"payload": {"n": 3}, "run_at": datetime.now(UTC) + timedelta(hours=1)},
            {"payload": {"n": 4}, "dedup_key": "one"},
        ])
        assert [flag for _, flag in created] == [True, True, True, False]
        assert created[3][0] == created[0][0]
        assert await c.enqueue("flow", {"n": 5}, group_key="g") > 0
        assert await c.next_eligible("flow") is not None
        # one at a time per group: the group's head only, and the record without a group
        assert [r.payload["n"] for r in await c.claim("flow", "w", 10)] == [1]
        slot = await c.schedule("tick", "flow", {"s": 1}, every=60)
        assert isinstance(slot, datetime)
        assert [s.name for s in await c.schedules()] == ["tick"]
        assert await c.tick() >= 0
        assert await c.unschedule("tick") is True
        assert await c.unschedule("tick") is False
        await c.alter_queue("flow", rate=0)
    run(dsn, body)


def test_grants_holds_and_sql_handler(dsn: str, conn: psycopg.Connection[Any]) -> None:
    conn.execute("create role pgclaim_test_aio_role nologin")
    conn.execute("create table public.aio_done (id bigint)")
    conn.execute(
        "create procedure public.aio_note(rec pgclaim.claimed) language sql"
        " as $$ insert into public.aio_done values (rec.id) $$")
    try:
        async def body(c: AsyncQueueClient) -> None:
            assert await c.grant_queue("q", "pgclaim_test_aio_role", ["claim"]) == ["claim"]
            assert await c.revoke_queue("q", "pgclaim_test_aio_role", ["claim"]) == []
            rid = await c.enqueue("q", {})
            record = (await c.claim("q", "w", 1))[0]
            assert await c.holds(rid, record.lease_token) is True
            assert await c.holds(rid, record.lease_token + 1) is False
            await c.release("w", [record])
            done = await c.run_sql_handler("q", "public.aio_note(pgclaim.claimed)")
            assert done == [(rid, "completed", None)]
        run(dsn, body)
        assert conn.execute("select count(*) from public.aio_done").fetchone() == (1,)
    finally:
        conn.execute("drop role pgclaim_test_aio_role")


def test_health_version_and_run(dsn: str) -> None:
    async def body(c: AsyncQueueClient) -> None:
        doc = await c.health(max_xact_age=timedelta(days=1))
        assert doc["status"] == "ok" and "q" in doc["queues"]
        assert await c.schema_version() == required_schema_version()
        assert await c.check_schema() == required_schema_version()

        async def fetch(k: psycopg.AsyncConnection[Any]) -> Any:
            return await (await k.execute("select 41 + 1")).fetchone()

        assert await c.run(fetch, idempotent=True) == (42,)
        assert c.conninfo() is not None and c.pool is not None
    run(dsn, body)


@pytest.mark.parametrize(("call", "cls", "state"), [
    (lambda c: c.enqueue("missing", {}), pgclaim.QueueNotFound, "PC001"),
    (lambda c: c.claim("q", "w", 0), pgclaim.InvalidArgument, "22023"),
    (lambda c: c.create_queue("bad name!"), pgclaim.InvalidArgument, "22023"),
    (lambda c: c.enqueue("q", {}, priority=None), pgclaim.InvalidArgument, "22004"),
    (lambda c: c.fail("w", 12345, "e"), pgclaim.RecordNotFound, "PC002"),
    (lambda c: c.purge("q", older_than=-5), pgclaim.InvalidArgument, "22023"),
])
def test_typed_errors(dsn: str, call: Any, cls: type[Exception], state: str) -> None:
    async def body(c: AsyncQueueClient) -> None:
        with pytest.raises(cls) as info:
            await call(c)
        assert isinstance(info.value, pgclaim.PgclaimError)
        assert info.value.sqlstate == state
        assert not isinstance(info.value, pgclaim.TransientError)
    run(dsn, body)


def test_permission_and_missing_schema(dsn: str, conn: psycopg.Connection[Any]) -> None:
    conn.execute("create role pgclaim_test_producer_aio login in role pgclaim_producer")

    async def main() -> None:
        producer_url = dsn.replace("postgres@", "pgclaim_test_producer_aio@")
        async with AsyncQueueClient(producer_url) as producer:
            with pytest.raises(pgclaim.PermissionDenied):
                await producer.claim("q", "w", 1)
        conn.execute("drop schema pgclaim cascade")
        async with AsyncQueueClient(dsn) as c:
            with pytest.raises(pgclaim.SchemaMissing):
                await c.schema_version()

    try:
        asyncio.run(main())
    finally:
        conn.execute("drop role pgclaim_test_producer_aio")


def test_enqueue_in_callers_transaction(dsn: str, conn: psycopg.Connection[Any]) -> None:
    conn.execute("create table orders (id int primary key)")

    async def body(c: AsyncQueueClient) -> None:
        async with await psycopg.AsyncConnection.connect(dsn) as mine:  # one transaction
            await mine.execute("insert into orders values (1)")
            rid = await c.enqueue("q", {"order": 1}, conn=mine)
            ids = await c.enqueue_many("q", [{"order": 1}], conn=mine)
            items = await c.enqueue_items("q", [{"payload": 1}], conn=mine)
            assert conn.execute("select count(*) from public.every_record").fetchone() == (0,)
            await mine.rollback()
            assert conn.execute("select count(*) from public.every_record where id = any(%s)",
                                [[rid, *ids, items[0][0]]]).fetchone() == (0,)
            await mine.execute("insert into orders values (2)")
            rid = await c.enqueue("q", {"order": 2}, conn=mine)
            assert await c.claim("q", "w", 10) == []  # not committed: invisible
            await mine.commit()
            record = (await c.claim("q", "w", 10))[0]
            assert record.id == rid
            # results and completion in one transaction of the caller's
            await mine.execute("insert into orders values (3)")
            assert await c.complete("w", [record], conn=mine) == 1
            assert status_of(conn, rid) == "running"
            await mine.commit()
        assert status_of(conn, rid) == "completed"
    run(dsn, body)


def test_client_on_callers_connection_and_pool(dsn: str,
                                               conn: psycopg.Connection[Any]) -> None:
    async def main() -> None:
        async with await psycopg.AsyncConnection.connect(dsn) as mine:
            c = AsyncQueueClient(mine)
            assert c.pool is None and c.conninfo() is None
            await c.create_queue("t")
            rid = await c.enqueue("t", {"x": 1})
            claimed = await c.claim("t", "w", 1)
            assert await c.complete("w", [rid], [claimed[0].lease_token]) == 1
            await mine.rollback()  # everything above was one transaction of the caller's
            with pytest.raises(pgclaim.QueueNotFound):
                await c.enqueue("t", {})
            await mine.rollback()
            await c.close()  # leaves the caller's connection open
            assert not mine.closed
        pool = AsyncConnectionPool(dsn, min_size=1, max_size=2, open=False)
        await pool.open()
        try:
            async with AsyncQueueClient(pool) as c:
                await c.create_queue("p")
                assert await c.enqueue_many("p", [1, 2]) != []
            assert not pool.closed  # a caller's pool stays open
        finally:
            await pool.close()

    asyncio.run(main())
    assert conn.execute("select count(*) from public.every_record").fetchone() == (2,)


def test_default_dsn_and_connection_settings(dsn: str, conn: psycopg.Connection[Any],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", dsn)

    async def fetch(k: psycopg.AsyncConnection[Any]) -> Any:
        return await (await k.execute(
            "select current_setting('statement_timeout'), current_setting('lock_timeout'),"
            " current_setting('application_name'), current_database()")).fetchone()

    async def main() -> None:
        c = AsyncQueueClient(statement_timeout=12.5, lock_timeout=2, tcp_user_timeout=None)
        try:  # no open(): the first call opens the pool
            await c.create_queue("env")
            assert await c.run(fetch) == (
                "12500ms", "2s", "pgclaim " + pgclaim.instance_id(), conn.info.dbname)
        finally:
            await c.close()

    asyncio.run(main())
    with pytest.raises(pgclaim.InvalidArgument) as info:
        AsyncQueueClient("postgresql://u:sec@ret@h:x/db")
    assert "sec@ret" not in str(info.value)
    with psycopg.connect(dsn) as blocking, pytest.raises(TypeError, match="AsyncConnection"):
        AsyncQueueClient(blocking)  # type: ignore[arg-type]


def test_pool_checks_only_connections_that_sat_idle(
    dsn: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    checked: list[int] = []
    real = AsyncConnectionPool.check_connection

    async def counting(conn: psycopg.AsyncConnection[Any]) -> None:
        checked.append(conn.info.backend_pid)
        await real(conn)

    monkeypatch.setattr(AsyncConnectionPool, "check_connection", staticmethod(counting))
    now = [1000.0]  # the client's idle clock, moved by the test
    monkeypatch.setattr(pgclaim.client, "time", SimpleNamespace(monotonic=lambda: now[0]))

    async def main() -> None:
        async with AsyncQueueClient(dsn, max_size=1, check_idle_after=0.5) as client:
            pool = client.pool
            assert pool is not None

            async def idle_for(seconds: float) -> None:
                deadline = time.monotonic() + 30
                while pool.get_stats().get("pool_available") != 1:
                    assert time.monotonic() < deadline, "the connection never came back"
                    await asyncio.sleep(0.01)
                now[0] += seconds

            await client.create_queue("chk")
            first = len(checked)
            for _ in range(5):
                await client.stats()
            assert len(checked) == first, "a connection just returned is lent without a probe"
            await idle_for(0.7)
            await client.stats()
            assert len(checked) == first + 1, "a connection idle past check_idle_after is probed"
            with psycopg.connect(dsn, autocommit=True) as admin:
                admin.execute("select pg_terminate_backend(%s, 10000)", (checked[-1],))
            await idle_for(0.7)
            assert [s.queue for s in await client.stats()] == ["chk"]

    asyncio.run(main())


def test_pool_reconnect_delay_is_capped(dsn: str) -> None:
    async def main() -> None:
        async with AsyncQueueClient(dsn, reconnect_delay_max=0.5) as client:
            assert getattr(client.pool, "reconnect_delay_max", None) == 0.5
            assert await client.stats() == []

    asyncio.run(main())


# -- retries: the rules of test_retry.py, awaited --------------------------------------------

def aretry(fn: Fake, *, idempotent: bool, policy: RetryPolicy = FAST, **kw: Any) -> str:
    async def fake(attempt: Any) -> str:
        return fn(attempt)

    async def no_wait(seconds: float) -> None:
        pass

    return asyncio.run(acall_with_retry(fake, policy=policy, operation="op",
                                        idempotent=idempotent, queue="q", sleep=no_wait, **kw))


def test_retries_then_succeeds_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="pgclaim")
    fn = Fake(pg_error("40001"), pg_error("40P01"))
    assert aretry(fn, idempotent=False) == "done" and fn.calls == 3
    assert [r.sqlstate for r in caplog.records] == ["40001", "40P01"]  # type: ignore[attr-defined]
    assert all(r.operation == "op" for r in caplog.records)  # type: ignore[attr-defined]


def test_gives_up_after_attempts_and_deadline(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="pgclaim")
    fn = Fake(*[pg_error("53300") for _ in range(10)])
    with pytest.raises(pgclaim.TransientError):
        aretry(fn, idempotent=True)
    assert fn.calls == 4 and "gave up" in caplog.records[-1].getMessage()
    now = [0.0]
    fn = Fake(*[pg_error("57P03") for _ in range(10)])

    async def sleep(s: float) -> None:
        now[0] += s

    async def fake(attempt: Any) -> str:
        return fn(attempt)

    policy = RetryPolicy(attempts=100, base=1.0, cap=1.0, deadline=3.5, jitter="none")
    with pytest.raises(pgclaim.TransientError):
        asyncio.run(acall_with_retry(fake, policy=policy, operation="op", idempotent=True,
                                     sleep=sleep, clock=lambda: now[0]))
    assert fn.calls == 4 and now[0] == 3.0


def test_lost_connection_and_timeouts_retried_only_when_idempotent() -> None:
    def lost() -> psycopg.Error:
        return psycopg.OperationalError("consuming input failed: server closed the connection")

    assert aretry(Fake(lost()), idempotent=True) == "done"
    fn = Fake(lost())
    with pytest.raises(pgclaim.OutcomeUnknown):
        aretry(fn, idempotent=False)
    assert fn.calls == 1
    assert aretry(Fake(lost(), sent=False), idempotent=False) == "done"
    assert aretry(Fake(pg_error("57014")), idempotent=True) == "done"
    fn = Fake(pg_error("57014"))
    with pytest.raises(pgclaim.TransientError) as info:
        aretry(fn, idempotent=False)
    assert fn.calls == 1 and not isinstance(info.value, pgclaim.OutcomeUnknown)
    fn = Fake(pg_error("PC001", "unknown queue"))
    with pytest.raises(pgclaim.QueueNotFound):
        aretry(fn, idempotent=True)
    with pytest.raises(KeyError):
        aretry(Fake(KeyError("x")), idempotent=True)


def test_statement_timeout_on_a_locked_record(dsn: str,
                                              caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="pgclaim")
    policy = RetryPolicy(attempts=3, base=0.05, cap=0.1, deadline=None)

    async def body(c: AsyncQueueClient) -> None:
        rid = await c.enqueue("q", {})
        claimed = await c.claim("q", "w", 1)
        with psycopg.connect(dsn) as locker:
            locker.execute("select 1 from pgclaim.records where id = %s for update", [rid])
            with pytest.raises(pgclaim.TransientError) as info:
                await c.complete("w", [rid], [claimed[0].lease_token], queue="q")
            assert info.value.sqlstate == "57014"
            tries = [r for r in caplog.records if getattr(r, "operation", "") == "complete"]
            assert len(tries) == 3  # two retries and the give-up
            caplog.clear()
            with pytest.raises(pgclaim.TransientError):
                await c.fail("w", rid, "x", queue="q")  # not idempotent: no retry
            assert len(caplog.records) == 1 and "not retried" in caplog.records[0].getMessage()
        assert await c.complete("w", [rid], [claimed[0].lease_token]) == 1

    run(dsn, body, retry=policy, statement_timeout=0.3)


def test_terminated_backend_is_retried(dsn: str, cluster_url: str) -> None:
    policy = RetryPolicy(attempts=3, base=0.05, cap=0.1, deadline=None)

    async def pid_of(k: psycopg.AsyncConnection[Any]) -> int:
        return k.info.backend_pid

    async def body(c: AsyncQueueClient) -> None:
        pid = await c.run(pid_of)

        async def sleep_unless_new(k: psycopg.AsyncConnection[Any]) -> None:
            await k.execute("select pg_sleep(case when pg_backend_pid() = %s then 60 else 0"
                            " end)", [pid])

        async def kill() -> None:  # once the statement is seen sleeping on the server
            async with await psycopg.AsyncConnection.connect(cluster_url,
                                                             autocommit=True) as admin:
                for _ in range(3000):
                    cur = await admin.execute("select 1 from pg_stat_activity where pid = %s"
                                              " and wait_event = 'PgSleep'", [pid])
                    if await cur.fetchone():
                        await admin.execute("select pg_terminate_backend(%s)", [pid])
                        return
                    await asyncio.sleep(0.01)

        killer = asyncio.create_task(kill())
        await c.run(sleep_unless_new, operation="sleep", idempotent=True)
        await killer
        assert await c.run(pid_of) != pid

    run(dsn, body, retry=policy, max_size=1)


def test_unreachable_server_gives_up(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="pgclaim")
    policy = RetryPolicy(attempts=2, base=0.01, cap=0.01, deadline=None)

    async def main() -> None:
        async with AsyncQueueClient("postgresql://postgres@127.0.0.1:1/none", retry=policy,
                                    pool_timeout=0.3, connect_timeout=1) as c:
            with pytest.raises(pgclaim.TransientError) as info:
                await c.enqueue("q", {})  # not idempotent, but never sent: retried
            assert info.value.sqlstate is None

    asyncio.run(main())
    msgs = [r.getMessage() for r in caplog.records if r.name == "pgclaim"]
    assert any("retry 1" in m for m in msgs) and any("gave up" in m for m in msgs)
