"""Upgrading releases 0.1.0 and 0.2.0 in place with records in flight, and the way back.

Release 0.1.0 is installed as its users installed it: yoyo applying the frozen
migrations/0001_initial.sql alone, by a login that is no superuser (it has CREATEROLE and
owns the database). A worker of release 0.1.0 (its client as it was at commit 50c25a5, run
from git in a separate process) keeps working while the current ``pgclaim.migrate`` upgrades
the database to the newest schema, then stops; a worker of the current client drains the
rest. The way back is ``yoyo rollback`` of 0002_v0_2_0, as docs/install.md says. Release
0.2.0 goes through the same: installed by its own ``pgclaim migrate`` (its client and
migrations as they were at its commit), a worker of 0.2.0 running through the upgrade to the
newest schema, and ``yoyo rollback`` of 0003_v0_3_0 back to it.

Every wait is for a condition (bounded, generously); the handler of both workers holds each
record until the test opens a gate for it, so the upgrade happens with records in flight by
construction, not by timing. What each check would catch is shown by a control: the final
check reports a record deleted and a record processed twice, the lock rules find each
mistake they look for, and the deadlock test failed against the first version of 0002.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tarfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from io import BytesIO
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest
from pgdb import ROOT, db_url, drop_database
from test_migrations import schema_dump
from yoyo import get_backend, read_migrations  # type: ignore[import-untyped]

from pgclaim import QueueClient, SchemaMismatch
from pgclaim.migrate import migrate

#: the commit of release 0.1.0: its client and its migrations/0001_initial.sql
RELEASE_0_1_0 = "50c25a5"
#: the commit of release 0.2.0: its client and its migrations 0001 and 0002
RELEASE_0_2_0 = "aceb1f6"
#: how long any awaited condition may take before the test gives up (none should take
#: more than a few seconds)
PATIENCE = 60.0
#: leases of the test's claims: far longer than the test, so that no lease expires and
#: every record is processed exactly once
LEASE = "30 minutes"
#: the comment sql/00_roles.sql puts on the roles pgclaim made
ROLE_MARK = "pgclaim role (made by the pgclaim installer)"

HANDLER = '''\
"""Handler of the upgrade test: logs each record it starts and finishes (with the lease token
its worker got), and holds each record until the test opens the gate for it. A record whose
payload asks for it is retried (at once) after its first attempt."""
import os
import time

import psycopg
from pgclaim.worker import Retry

LOG_URL = os.environ["UPGRADE_LOG_URL"]
CLIENT = os.environ["UPGRADE_CLIENT"]


def log(conn, record, event):
    conn.execute(
        "insert into public.upgrade_log (record_id, lease_token, client, pid, event)"
        " values (%s, %s, %s, %s, %s)",
        (record.id, record.lease_token, CLIENT, os.getpid(), event))


def handle(record):
    with psycopg.connect(LOG_URL, autocommit=True) as conn:
        log(conn, record, "started")
        gate = "select exists (select from public.upgrade_gate where record_id in (%s, 0))"
        while not conn.execute(gate, (record.id,)).fetchone()[0]:
            time.sleep(0.02)
        if record.payload.get("retry") and record.attempt == 1:
            log(conn, record, "retried")
            raise Retry("asked to retry", after=0)
        log(conn, record, "done")
'''

#: runs the pgclaim command of whichever package ``import pgclaim`` finds, after saying where
#: that package is
BOOT = ("import sys, pgclaim; print('pgclaim at', pgclaim.__file__, flush=True); "
        "from pgclaim.cli import main; sys.exit(main(sys.argv[1:]))")


# -- helpers ------------------------------------------------------------------------------

def wait_for(what: str, condition: Callable[[], Any], *, timeout: float = PATIENCE,
             details: Callable[[], str] = lambda: "") -> Any:
    """Polls ``condition`` until it returns something true; fails after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout:.0f}s waiting for {what}\n{details()}")
        time.sleep(0.05)


def role_url(cluster_url: str, role: str, database: str) -> str:
    """The URL of ``database`` on the cluster of ``cluster_url``, logging in as ``role``."""
    host = urlsplit(cluster_url).netloc.rsplit("@", 1)[-1]
    return f"postgresql://{role}@{host}/{database}"


def yoyo_url(url: str) -> str:
    return "postgresql+psycopg://" + url.split("://", 1)[1]


@dataclass(frozen=True)
class Logins:
    """The logins of a 0.1.0 deployment: the installer (no superuser) and a worker."""

    installer: str
    worker: str


@pytest.fixture(scope="module")
def logins(cluster_url: str) -> Iterator[Logins]:
    suffix = uuid.uuid4().hex[:8]
    made = Logins(installer=f"upg_installer_{suffix}", worker=f"upg_worker_{suffix}")
    with psycopg.connect(cluster_url, autocommit=True) as conn:
        conn.execute(f"create role {made.installer} login createrole")
        conn.execute(f"create role {made.worker} login")
    yield made
    with psycopg.connect(cluster_url, autocommit=True) as conn:
        conn.execute(f"drop role if exists {made.worker}")
        conn.execute(f"drop role if exists {made.installer}")


@pytest.fixture
def database(cluster_url: str, logins: Logins) -> Iterator[str]:
    """A fresh empty database owned by the installer; its name."""
    name = "upg_" + uuid.uuid4().hex[:12]
    with psycopg.connect(cluster_url, autocommit=True) as conn:
        conn.execute(f'create database "{name}" owner {logins.installer} template template0')
    try:
        yield name
    finally:
        drop_database(cluster_url, name)


def from_release(*args: str) -> bytes:
    """What ``git ARGS`` prints in the checkout, whose history holds release 0.1.0."""
    result = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, check=False)
    if result.returncode != 0:
        pytest.fail(f"git {' '.join(args)}: {result.stderr.decode().strip()}; these tests need "
                    f"release 0.1.0 (commit {RELEASE_0_1_0}) in the clone's history")
    return result.stdout


@pytest.fixture(scope="module")
def old_client(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder holding release 0.1.0's package ``pgclaim`` (for PYTHONPATH)."""
    where = tmp_path_factory.mktemp("pgclaim-0.1.0")
    archive = from_release("archive", RELEASE_0_1_0, "client/pgclaim")
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(where, filter="data")
    assert (where / "client" / "pgclaim" / "worker.py").is_file()
    return where / "client"


@pytest.fixture(scope="module")
def first_migration(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding only migrations/0001_initial.sql, as release 0.1.0 shipped it."""
    where = tmp_path_factory.mktemp("migrations-0.1.0")
    text = from_release("show", f"{RELEASE_0_1_0}:migrations/0001_initial.sql")
    assert text == (ROOT / "migrations" / "0001_initial.sql").read_bytes(), "0001 is frozen"
    (where / "0001_initial.sql").write_bytes(text)
    return where


#: the columns release 0.3.0 adds to records and finished records (the FIFO group, when
#: each was claimed first and last): null for records of 0.2.0 or claimed before the
#: upgrade, gone after a rollback to 0.2.0
ADDED_IN_0_3_0 = ("group_key", "first_claimed_at", "claimed_at")


def newer_than(migration: str) -> list[str]:
    """The migrations of this checkout after ``migration``, in the order they apply."""
    return sorted(p.name.removesuffix(".sql") for p in Path(ROOT, "migrations").glob("*.sql")
                  if not p.name.endswith(".rollback.sql")
                  and p.name.removesuffix(".sql") > migration)


@pytest.fixture(scope="module")
def client_0_2_0(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder holding release 0.2.0's package ``pgclaim`` (for PYTHONPATH), with its
    migrations and sql/ beside it where the package looks for them."""
    where = tmp_path_factory.mktemp("pgclaim-0.2.0")
    archive = from_release("archive", RELEASE_0_2_0, "client/pgclaim", "migrations", "sql")
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(where, filter="data")
    shipped = sorted(p.name for p in (where / "migrations").glob("*.sql"))
    assert shipped == ["0001_initial.sql", "0002_v0_2_0.rollback.sql", "0002_v0_2_0.sql"]
    for name in shipped:
        assert (where / "migrations" / name).read_bytes() == Path(
            ROOT, "migrations", name).read_bytes(), f"{name} is frozen"
    return where / "client"


def install_with(client: Path, url: str) -> None:
    """Installs pgclaim with the ``pgclaim migrate`` of the release whose package is in
    ``client``, as its users did."""
    result = subprocess.run(
        [sys.executable, "-c", BOOT, "--database", url, "migrate"],
        env={**os.environ, "PYTHONPATH": str(client)}, capture_output=True, text=True,
        check=False, timeout=PATIENCE)
    assert result.returncode == 0, result.stdout + result.stderr
    assert str(client) in result.stdout


def install_0_1_0(url: str, first_migration: Path) -> None:
    """Installs release 0.1.0 as its ``pgclaim migrate`` did: yoyo, every migration it had."""
    backend = get_backend(yoyo_url(url))
    try:
        with backend.lock():
            backend.apply_migrations(backend.to_apply(read_migrations(str(first_migration))))
    finally:
        backend.connection.close()


def make_log_tables(url: str) -> None:
    """The handler's log and gate (in schema public: no upgrade step touches them)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("""
            create table public.upgrade_log (
                seq bigint generated always as identity primary key,
                record_id bigint not null, lease_token bigint, client text not null,
                pid integer not null, event text not null,
                at timestamptz not null default clock_timestamp())""")
        conn.execute("create table public.upgrade_gate (record_id bigint primary key)")


class WorkerProcess:
    """``pgclaim worker`` of one client (old: release 0.1.0 from git; new: this checkout) in
    a process of its own, with the test's handler."""

    def __init__(self, name: str, folder: Path, url: str, log_url: str,
                 pythonpath: Path | None, args: list[str]) -> None:
        self.name = name
        (folder / "upgrade_handler.py").write_text(HANDLER)
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("PG") and k not in ("DATABASE_URL", "PYTHONPATH")}
        env.update(UPGRADE_LOG_URL=log_url, UPGRADE_CLIENT=name)
        if pythonpath is not None:
            env["PYTHONPATH"] = str(pythonpath)
        self.out = folder / f"{name}.out"
        self.err = folder / f"{name}.err"
        with self.out.open("w") as out, self.err.open("w") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", BOOT, "--database", url, "worker",
                 "upgrade_handler:handle", *args],
                cwd=folder, env=env, stdout=out, stderr=err)

    def package(self) -> str:
        """Where the process imported ``pgclaim`` from."""
        found = wait_for(f"the {self.name} worker to start",
                         lambda: re.search(r"pgclaim at (\S+)", self.out.read_text()),
                         details=self.log)
        return found.group(1)

    def log(self) -> str:
        return f"--- {self.name} worker's log:\n{self.err.read_text()}"

    def problems(self) -> list[str]:
        """The lines of its log that report anything going wrong."""
        return [line for line in self.err.read_text().splitlines()
                if re.search(r"WARNING|ERROR|CRITICAL|Traceback|rror:", line)]

    def wait(self, timeout: float = PATIENCE) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the {self.name} worker did not stop\n{self.log()}") from None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def every_record(conn: psycopg.Connection[Any]) -> str:
    """Where every record is: pgclaim.records in 0.1.0; from 0.2.0 on, the unfinished ones
    there and the finished ones in pgclaim.finished (both with the same columns)."""
    if conn.execute("select to_regclass('pgclaim.finished') is null").fetchone() == (True,):
        return "pgclaim.records"
    return "(select * from pgclaim.records union all select * from pgclaim.finished)"


def records(conn: psycopg.Connection[Any]) -> dict[int, dict[str, Any]]:
    """Every record, as pgclaim keeps it (lease_until left out: heartbeats move it)."""
    rows = conn.execute(f"select r.id, to_jsonb(r) - 'lease_until' from {every_record(conn)}"
                        " as r")
    return {rid: row for rid, row in rows}


def log_events(conn: psycopg.Connection[Any], event: str) -> list[tuple[int, int, str]]:
    """(record id, lease token, client) of each ``event`` of the handler, in order."""
    return conn.execute(
        "select record_id, lease_token, client from public.upgrade_log"
        " where event = %s order by seq", (event,)).fetchall()


def open_gate(conn: psycopg.Connection[Any], ids: list[int]) -> None:
    conn.execute("insert into public.upgrade_gate select unnest(%s::bigint[])", (ids,))


Expected = dict[int, tuple[str, list[str], list[str]]]
"""``{id: (final status, the clients whose handler started it, in order, those whose handler
finished it)}``"""


def final_problems(conn: psycopg.Connection[Any], expected: Expected) -> list[str]:
    """What is wrong at the end: a record missing or added, in another state, or started or
    processed by a handler other than expected (twice, or by none, or by the other client)."""
    problems = []
    now = {rid: row["status"] for rid, row in records(conn).items()}
    for rid in sorted(set(expected) - set(now)):
        problems.append(f"record {rid} is lost")
    for rid in sorted(set(now) - set(expected)):
        problems.append(f"record {rid} appeared")
    for event, position in (("started", 1), ("done", 2)):
        seen: dict[int, list[str]] = {}
        for rid, _, client in log_events(conn, event):
            seen.setdefault(rid, []).append(client)
        for rid, want in sorted(expected.items()):
            if seen.get(rid, []) != want[position]:
                problems.append(
                    f"record {rid} was {event} by {seen.get(rid, [])}, not {want[position]}")
        for rid in sorted(set(seen) - set(expected)):
            problems.append(f"unknown record {rid} was {event}")
    for rid, (status, _, _) in sorted(expected.items()):
        if rid in now and now[rid] != status:
            problems.append(f"record {rid} is {now[rid]}, not {status}")
    return problems


#: how the worker of the older release runs: two handler threads, batches of four, leases
#: far longer than the test, heartbeats and reclaims often
OLD_WORKER_ARGS = ["--queue", "jobs", "--concurrency", "2", "--batch-size", "4", "--lease",
                   "30m", "--heartbeat-every", "0.5", "--poll-interval", "0.2",
                   "--reclaim-every", "1", "--grace", "120"]


def handler_running(conn: psycopg.Connection[Any]) -> set[int]:
    """The records a handler started and has not finished."""
    running: set[int] = set()
    for rid, event in conn.execute(
            "select record_id, event from public.upgrade_log order by seq").fetchall():
        (running.add if event == "started" else running.discard)(rid)
    return running


def old_commands_work(client: Path, url: str) -> None:
    """The older release's ``pgclaim stats``, ``health`` and ``reclaim`` succeed on ``url``."""
    for command in (["stats", "--json"], ["health", "--json"], ["reclaim"]):
        result = subprocess.run(
            [sys.executable, "-c", BOOT, "--database", url, *command],
            env={**os.environ, "PYTHONPATH": str(client)}, capture_output=True,
            text=True, check=False, timeout=PATIENCE)
        assert result.returncode == 0, (command, result.stdout, result.stderr)
        assert str(client) in result.stdout


def stop_old_worker(old: WorkerProcess, admin: psycopg.Connection[Any], held: list[int],
                    worker_id: str) -> list[int]:
    """SIGTERM to the older release's worker holding ``held``: it releases the records it
    had not started (as they were before their claim), finishes those in its handler once
    the gate opens, deregisters and exits cleanly. Returns the ids it finished."""
    running_ids = sorted(handler_running(admin))
    waiting_ids = [rid for rid in held if rid not in running_ids]
    assert len(running_ids) == 2 and set(running_ids) < set(held)
    old.proc.send_signal(signal.SIGTERM)
    wait_for("the old worker to release the records it had not started",
             lambda: admin.execute(
                 "select bool_and(status = 'pending' and worker_id is null and attempt = 0"
                 " and lease_token is null and holder_role is null) from pgclaim.records"
                 " where id = any(%s)", (waiting_ids,)).fetchone()[0], details=old.log)
    open_gate(admin, running_ids)
    assert old.wait() == 0, old.log()
    assert old.problems() == [], old.log()
    assert (f"released {len(waiting_ids)} record(s) it had not started"
            in old.err.read_text()), old.log()
    assert "deregistered (released 0)" in old.err.read_text(), old.log()
    assert admin.execute("select count(*) from pgclaim.workers where worker_id = %s",
                         (worker_id,)).fetchone()[0] == 0
    return running_ids


def drain_with_current_worker(tmp_path: Path, worker_url: str, admin_url: str,
                              admin: psycopg.Connection[Any]) -> WorkerProcess:
    """Opens the gate for every record and drains the queue with this checkout's worker."""
    open_gate(admin, [0])
    new = WorkerProcess("new", tmp_path, worker_url, admin_url, None,
                        ["--queue", "jobs", "--concurrency", "4", "--poll-interval", "0.2",
                         "--until-empty"])
    assert new.package() == str(ROOT / "client" / "pgclaim" / "__init__.py")
    assert new.wait() == 0, new.log()
    assert new.problems() == [], new.log()
    return new


def processed_once(pending: list[int], by_old: list[int], retried: int, by_new: list[int],
                   ) -> Expected:
    """What the handlers must have done: ``by_old`` by the old worker, ``retried`` started
    by it and finished by the new one, the other pending records and ``by_new`` by the
    new one; each once."""
    expected: Expected = {rid: ("completed", ["old"], ["old"]) for rid in by_old}
    expected |= {rid: ("completed", ["new"], ["new"]) for rid in pending
                 if rid not in by_old + [retried]}
    expected |= {rid: ("completed", ["new"], ["new"]) for rid in by_new}
    expected |= {retried: ("completed", ["old", "new"], ["new"])}
    return expected


# -- the upgrade with an old worker running -------------------------------------------------

def test_upgrade_with_a_worker_of_0_1_0_running(
    cluster_url: str, template_db: str, logins: Logins, database: str, old_client: Path,
    first_migration: Path, tmp_path: Path,
) -> None:
    installer_url = role_url(cluster_url, logins.installer, database)
    worker_url = role_url(cluster_url, logins.worker, database)
    admin_url = db_url(cluster_url, database)
    install_0_1_0(installer_url, first_migration)
    make_log_tables(admin_url)
    with psycopg.connect(cluster_url, autocommit=True) as su:
        su.execute(f"grant pgclaim_worker to {logins.worker}")

    # -- release 0.1.0 in use: a record in every state --------------------------------------
    with psycopg.connect(installer_url, autocommit=True) as inst, \
            psycopg.connect(worker_url, autocommit=True) as work:
        def one(conn: psycopg.Connection[Any], sql: str, *args: Any) -> Any:
            row = conn.execute(sql, args).fetchone()
            assert row is not None
            return row[0]

        one(inst, "select pgclaim.configure(worker_timeout => '1 hour')")
        one(inst, "select pgclaim.create_queue(queue => 'jobs', lease => %s)", LEASE)
        one(inst, "select pgclaim.create_queue(queue => 'long', lease => '2 days')")

        def enqueue(priority: int, run_at: str | None = None, dedup_key: str | None = None,
                    ) -> int:
            return int(one(inst, "select pgclaim.enqueue(queue => 'jobs', payload => %s,"
                           " priority => %s, run_at => %s, dedup_key => %s)",
                           '{"n": 0}', priority, run_at, dedup_key))

        def claim(worker_id: str, n: int) -> list[tuple[int, int]]:
            return work.execute(
                "select id, lease_token from pgclaim.claim_batch(queue => 'jobs',"
                " worker_id => %s, batch_size => %s)", (worker_id, n)).fetchall()

        done, failed = enqueue(100), enqueue(100)
        got = claim("setup-w", 2)
        assert [rid for rid, _ in got] == [done, failed]
        setup_token = got[0][1]
        assert one(work, "select pgclaim.complete(worker_id => 'setup-w', ids => %s,"
                   " lease_tokens => %s)", [done], [setup_token]) == 1
        assert one(work, "select pgclaim.fail(worker_id => 'setup-w', id => %s, error => 'bad',"
                   " lease_token => %s, fatal => true)", failed, setup_token) == "failed"
        cancelled = enqueue(100)
        assert one(inst, "select pgclaim.cancel(ids => %s)", [cancelled]) == 1
        # Held by a registered worker id that is not running: its records are finished by
        # hand after the upgrade, under their 0.1.0 token. One has run_at -infinity.
        legacy_inf, legacy = enqueue(90, "-infinity"), enqueue(90)
        work.execute("select pgclaim.register_worker(worker_id => 'legacy-w')")
        held = claim("legacy-w", 2)
        assert {rid for rid, _ in held} == {legacy_inf, legacy}
        legacy_token = held[0][1]
        pending = [int(r[0]) for r in inst.execute(
            "select pgclaim.enqueue_batch(queue => 'jobs', payloads => array(select"
            " jsonb_build_object('n', i, 'retry', i = 3) from generate_series(1, 12) as i),"
            " priority => 10)")]
        retried = pending[2]
        dedup = enqueue(5, dedup_key="dedup-1")
        infinite = enqueue(-10, "-infinity")
        scheduled = enqueue(0, (datetime.now(UTC) + timedelta(days=1)).isoformat())
        # 0.1.0 accepted run_at -infinity, and then could not count the queue (22008):
        with pytest.raises(psycopg.errors.DatetimeFieldOverflow):
            inst.execute("select * from pgclaim.queue_stats")
        # An operator's routine maintenance rewrites records' row in pg_class (the upgrade
        # once failed on such a database: its sequence came before its table).
        inst.execute("vacuum full pgclaim.records")

    # -- a worker of release 0.1.0 takes the first four pending records and holds them ------
    old = WorkerProcess("old", tmp_path, worker_url, admin_url, old_client,
                        OLD_WORKER_ARGS)
    new: WorkerProcess | None = None
    admin = psycopg.connect(admin_url, autocommit=True)
    try:
        assert old.package() == str(old_client / "pgclaim" / "__init__.py")

        def state() -> str:
            rows = admin.execute(
                "select id, status, worker_id, holder_role::regrole, lease_token, attempt"
                f" from {every_record(admin)} as r order by id").fetchall()
            events = admin.execute(
                "select record_id, client, event from public.upgrade_log order by seq"
            ).fetchall()
            return "\n".join([old.log(), "--- records:", *map(str, rows), "--- handler:",
                              *map(str, events)])

        def old_running() -> list[tuple[int, int, str]]:
            return admin.execute(
                "select id, lease_token, worker_id from pgclaim.records where status ="
                " 'running' and worker_id not in ('legacy-w') order by id").fetchall()

        def started_and_holding() -> bool:
            return len(old_running()) == 4 and len(handler_running(admin)) == 2

        wait_for("the old worker to hold four records, two of them in its handler",
                 started_and_holding, details=old.log)
        in_flight = old_running()
        assert [rid for rid, _, _ in in_flight] == pending[:4]
        old_token = in_flight[0][1]
        old_worker_id = in_flight[0][2]
        assert {(token, wid) for _, token, wid in in_flight} == {(old_token, old_worker_id)}
        before = records(admin)

        # -- the upgrade, with the current code, while the old worker holds its records ------
        # The three roles were made by 0.1.0, which did not mark them: the upgrade must.
        made_by_0_1_0 = ("pgclaim_producer", "pgclaim_worker", "pgclaim_admin")
        with psycopg.connect(cluster_url, autocommit=True) as su:
            for role in made_by_0_1_0:
                su.execute(f"comment on role {role} is null")
        try:
            assert migrate(installer_url) == newer_than("0001_initial")
            marks = admin.execute(
                "select rolname, shobj_description(oid, 'pg_authid') from pg_roles"
                " where rolname = any(%s) order by rolname", (list(made_by_0_1_0),)).fetchall()
        finally:
            with psycopg.connect(cluster_url, autocommit=True) as su:
                for role in made_by_0_1_0:
                    su.execute(f"comment on role {role} is '{ROLE_MARK}'")
        assert marks == [(role, ROLE_MARK) for role in sorted(made_by_0_1_0)]
        upgraded_at = admin.execute("select clock_timestamp()").fetchone()[0]
        assert old.proc.poll() is None, old.log()
        assert admin.execute("select nspowner::regrole::text from pg_namespace"
                             " where nspname = 'pgclaim'").fetchone() == ("pgclaim_owner",)

        # Nothing lost or changed but what the upgrade fixes: -infinity became enqueued_at.
        after = records(admin)
        assert set(after) == set(before)
        for rid in (legacy_inf, infinite):
            assert before[rid]["run_at"] == "-infinity"
            before[rid]["run_at"] = before[rid]["enqueued_at"]
        for rid, row in after.items():
            assert row.pop("holder_role") is None
            for added in ADDED_IN_0_3_0:  # 0.3.0's: none for records claimed before it
                assert row.pop(added) is None
            assert row == before[rid], f"record {rid} changed in the upgrade"
        # The held records keep live leases, extended by the old worker's heartbeats.
        assert admin.execute(
            "select bool_and(lease_until > now() + interval '20 minutes') from pgclaim.records"
            " where status = 'running'").fetchone()[0]
        wait_for("the old worker's heartbeat to adopt its worker id", lambda: admin.execute(
            "select owner_role = %s::regrole from pgclaim.workers where worker_id = %s",
            (logins.worker, old_worker_id)).fetchone()[0], details=old.log)
        # Counts and health work again, for the current schema and for the old client.
        stats = admin.execute(
            "select pending, scheduled, running, completed, failed, cancelled"
            " from pgclaim.queue_stats where queue = 'jobs'").fetchone()
        assert stats == (len(pending) - 4 + 2, 1, 6, 1, 1, 1)
        with psycopg.connect(worker_url, autocommit=True) as work:
            health = work.execute("select pgclaim.health()").fetchone()[0]
        assert health["status"] == "ok", health
        assert health["queues"]["jobs"]["pending"] == len(pending) - 4 + 2
        old_commands_work(old_client, worker_url)
        # A queue whose lease is longer than 0.2.0's default max_lease has it as max_lease,
        # so that its settings stay valid (alter_queue checks them all).
        assert admin.execute("select max_lease from pgclaim.queues where queue = 'long'"
                             ).fetchone() == (timedelta(days=2),)
        admin.execute("select pgclaim.alter_queue(queue => 'long', retention => '1 day')")
        # A dedup_key is still held by its unfinished record.
        assert admin.execute("select pgclaim.enqueue(queue => 'jobs', payload => '{}',"
                             " dedup_key => 'dedup-1')").fetchone()[0] == dedup

        # -- the old worker finishes its records under their 0.1.0 lease and token -----------
        # (one of them it fails, to be retried at once, as its handler asks)
        completed = [rid for rid in pending[:4] if rid != retried]
        open_gate(admin, pending[:4])
        wait_for("the old worker to report on the records it held", lambda: admin.execute(
            "select bool_and(status::text = case when id = %s then 'pending' else 'completed' end)"
            f" from {every_record(admin)} as r where id = any(%s)",
            (retried, pending[:4])).fetchone()[0],
            details=state)
        finished = admin.execute(
            "select id, lease_token, worker_id, finished_at > %s from pgclaim.finished"
            " where id = any(%s) order by id", (upgraded_at, completed)).fetchall()
        assert finished == [(rid, old_token, old_worker_id, True) for rid in completed]
        assert {(rid, token, client) for rid, token, client in log_events(admin, "done")} == {
            (rid, old_token, "old") for rid in completed}
        assert log_events(admin, "retried") == [(retried, old_token, "old")]
        assert admin.execute(
            "select attempt, worker_id, lease_token, holder_role, last_error, run_at <= now()"
            " from pgclaim.records where id = %s", (retried,)).fetchone() == (
            1, None, None, None, "Retry: asked to retry", True)

        # ... and claims more under the new schema: random tokens, its role recorded as the holder.
        # It claims while it has two records or fewer in hand, up to four: it ends up with
        # three or four, two of them blocked in its handler, the others waiting for a thread.
        def claimed_again() -> bool:
            count, holders = admin.execute(
                "select count(*), bool_and(holder_role = %s::regrole) from pgclaim.records"
                " where status = 'running' and worker_id = %s",
                (logins.worker, old_worker_id)).fetchone()
            return count >= 3 and holders and len(handler_running(admin)) == 2

        wait_for("the old worker to claim more records under the new schema", claimed_again,
                 details=state)
        held_now = [rid for rid, _, _ in old_running()]
        assert held_now == pending[4:4 + len(held_now)]
        assert old_token not in {token for _, token, _ in old_running()}

        # -- SIGTERM: the old worker releases what it has not started, finishes the rest ------
        running_ids = stop_old_worker(old, admin, held_now, old_worker_id)

        # -- the records held by legacy-w since 0.1.0 finish under their 0.1.0 token ---------
        with psycopg.connect(worker_url, autocommit=True) as work:
            report = ("select pgclaim.complete(worker_id => 'legacy-w', ids => %s,"
                      " lease_tokens => %s)")
            assert work.execute(report, ([legacy_inf], [legacy_token + 1])).fetchone()[0] == 0
            assert work.execute(report, ([legacy_inf], [legacy_token])).fetchone()[0] == 1
            assert work.execute(
                "select pgclaim.fail(worker_id => 'legacy-w', id => %s, error => 'again',"
                " retry_after => '0', lease_token => %s)", (legacy, legacy_token)
            ).fetchone()[0] == "pending"
            assert work.execute("select pgclaim.heartbeat(worker_id => 'legacy-w')"
                                ).fetchone()[0] == 0
            assert work.execute("select pgclaim.deregister_worker(worker_id => 'legacy-w')"
                                ).fetchone()[0] == 0

        # -- a worker of the current client drains the rest -----------------------------------
        new = drain_with_current_worker(tmp_path, worker_url, admin_url, admin)

        expected = processed_once(pending, completed + running_ids, retried,
                                  [legacy, dedup, infinite])
        expected |= {rid: (status, [], []) for rid, status in (
            (done, "completed"), (failed, "failed"), (cancelled, "cancelled"),
            (legacy_inf, "completed"), (scheduled, "pending"))}
        assert final_problems(admin, expected) == []
        final = records(admin)
        assert final[legacy_inf]["lease_token"] == legacy_token
        assert final[infinite]["run_at"] == final[infinite]["enqueued_at"]
        untouched = {"holder_role": None} | dict.fromkeys(ADDED_IN_0_3_0)
        assert final[scheduled] == {**before[scheduled], **untouched}
        for rid in (done, failed, cancelled):
            assert final[rid] == {**before[rid], **untouched}
        assert admin.execute("select pending, scheduled, running, completed, failed, cancelled"
                             " from pgclaim.queue_stats where queue = 'jobs'").fetchone() == (
            0, 1, 0, len(pending) + 5, 1, 1)

        # Controls: the same check reports a lost record and a record processed twice.
        admin.execute("insert into public.upgrade_log (record_id, lease_token, client, pid,"
                      " event) values (%s, 1, 'new', 0, 'done')", (dedup,))
        admin.execute("delete from pgclaim.finished where id = %s", (pending[-1],))
        assert final_problems(admin, expected) == [
            f"record {pending[-1]} is lost",
            f"record {dedup} was done by ['new', 'new'], not ['new']",
        ]
    finally:
        admin.close()
        old.kill()
        if new is not None:
            new.kill()

    # The upgraded schema is exactly a fresh install's (owners and grants included).
    assert schema_dump(admin_url) == schema_dump(db_url(cluster_url, template_db))


# -- the upgrade's locks --------------------------------------------------------------------

def waiting_for_records_holding_queues(conn: psycopg.Connection[Any], other_than: int) -> bool:
    """Whether a backend (not ``other_than``) holds pgclaim.queues and waits for records:
    the moment a call that locks records, then queues, closes a deadlock with it."""
    return bool(conn.execute("""
        select exists (
            select from pg_locks as w join pg_locks as h using (pid)
            where w.pid <> %s and w.locktype = 'relation' and not w.granted
              and w.relation = 'pgclaim.records'::regclass and w.mode = 'AccessExclusiveLock'
              and h.relation = 'pgclaim.queues'::regclass and h.granted
              and h.mode = 'AccessExclusiveLock')""", (other_than,)).fetchone()[0])


def test_upgrade_gives_way_to_a_call_instead_of_deadlocking(
    cluster_url: str, logins: Logins, database: str, first_migration: Path,
) -> None:
    """A call that holds records and then asks for queues, while the upgrade holds queues
    and waits for records, is a deadlock. The upgrade must give way (its lock attempts last
    100 ms and give back what they got), so that both succeed. Taking one lock per ALTER,
    as 0002 first did, it held queues for as long as it waited for records, and PostgreSQL
    aborted one of the two after deadlock_timeout."""
    installer_url = role_url(cluster_url, logins.installer, database)
    install_0_1_0(installer_url, first_migration)
    outcome: dict[str, Any] = {}

    def upgrade() -> None:
        try:
            outcome["applied"] = migrate(installer_url)
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            outcome["error"] = exc

    with psycopg.connect(installer_url) as call, \
            psycopg.connect(db_url(cluster_url, database), autocommit=True) as watch:
        # A worker's call, in the middle: it has locked records (as fail does first).
        call.execute("update pgclaim.records set priority = 0 where false")
        pid = call.info.backend_pid
        upgrading = threading.Thread(target=upgrade)
        upgrading.start()
        try:
            wait_for("the upgrade to hold queues and wait for records",
                     lambda: waiting_for_records_holding_queues(watch, pid))
            # ... and now it needs queues (as fail does next).
            call.execute("select count(*) from pgclaim.queues").fetchone()
            call.commit()
        finally:
            upgrading.join(PATIENCE)
    assert not upgrading.is_alive()
    assert outcome == {"applied": newer_than("0001_initial")}


def test_upgrade_that_cannot_lock_changes_nothing(
    cluster_url: str, logins: Logins, database: str, first_migration: Path,
) -> None:
    """A transaction that keeps a table locked longer than the upgrade's lock_timeout (10 s)
    makes the upgrade fail with 55P03 without changing anything; run again, it succeeds."""
    installer_url = role_url(cluster_url, logins.installer, database)
    install_0_1_0(installer_url, first_migration)
    before = schema_dump(installer_url)
    with psycopg.connect(installer_url) as long:
        long.execute("select count(*) from pgclaim.workers").fetchone()
        started = time.monotonic()
        with pytest.raises(psycopg.errors.LockNotAvailable) as refused:
            migrate(installer_url)
        waited = time.monotonic() - started
    assert 10 <= waited < 10 + PATIENCE
    assert "could not lock pgclaim's tables within 10s" in str(refused.value)
    assert schema_dump(installer_url) == before
    with psycopg.connect(installer_url) as conn:
        assert conn.execute("select pgclaim.schema_version()").fetchone() == (1,)
    assert migrate(installer_url) == newer_than("0001_initial")


# -- what every migration must do -----------------------------------------------------------

def migration_texts() -> dict[str, str]:
    """Every migration and rollback file, by name."""
    return {p.name: p.read_text() for p in sorted(Path(ROOT, "migrations").glob("*.sql"))}


def lock_problems(name: str, text: str) -> list[str]:
    """What ``text`` (migration ``name``) does wrong with locks: an ALTER TABLE with no
    lock_timeout set before it, a CREATE INDEX on a table it did not create that is not
    CONCURRENTLY in a migration marked ``-- transactional: false``."""
    code = re.sub(r"--[^\n]*", "", text).lower()
    problems = []
    alter = re.search(r"\balter\s+table\b", code)
    timeout = re.search(r"\block_timeout\b", code)
    if alter and not (timeout and timeout.start() < alter.start()):
        problems.append(f"{name}: alter table without lock_timeout set before it")
    created = set(re.findall(r"\bcreate\s+table\s+(?:if\s+not\s+exists\s+)?([\w.\"]+)", code))
    non_transactional = re.search(r"^--\s*transactional\s*:\s*false\s*$", text,
                                  re.MULTILINE | re.IGNORECASE) is not None
    index = (r"\bcreate\s+(?:unique\s+)?index\s+(concurrently\s+)?(?:if\s+not\s+exists\s+)?"
             r"(?:[\w\"]+\s+)?on\s+(?:only\s+)?([\w.\"]+)")
    for concurrently, table in re.findall(index, code):
        if table in created:
            continue
        if not concurrently:
            problems.append(f"{name}: index on existing table {table} not built concurrently")
        elif not non_transactional:
            problems.append(f"{name}: concurrent index on {table} in a transactional migration")
    return problems


def test_migrations_that_alter_tables_set_lock_timeout_and_build_indexes_concurrently(
) -> None:
    texts = migration_texts()
    assert "0002_v0_2_0.sql" in texts and "0002_v0_2_0.rollback.sql" in texts
    problems = [p for name, text in texts.items() if not name.startswith("0001_")
                for p in lock_problems(name, text)]
    # A rollback puts a release back whole, with pgclaim's tables locked from its start
    # (a release's workers stop before it is rolled back, docs/install.md): it rebuilds the
    # older release's indexes inside its transaction, on the records it moved back.
    problems = [p for p in problems
                if not (".rollback.sql:" in p and "not built concurrently" in p)]
    assert problems == []
    # The first migration creates every table, and its indexes with them.
    assert lock_problems("0001_initial.sql", texts["0001_initial.sql"]) == []


def test_lock_rules_catch_what_they_forbid() -> None:
    """Controls: the check above finds each mistake it looks for."""
    assert lock_problems("a", "alter table pgclaim.records add column x int;") == [
        "a: alter table without lock_timeout set before it"]
    assert lock_problems("b", "-- lock_timeout comes later\nalter table pgclaim.queues"
                         " add column x int;\nset local lock_timeout = '10s';") == [
        "b: alter table without lock_timeout set before it"]
    assert lock_problems("c", "set local lock_timeout = '10s';\n"
                         "alter table pgclaim.queues add column x int;") == []
    assert lock_problems("d", "create index records_x on pgclaim.records (x);") == [
        "d: index on existing table pgclaim.records not built concurrently"]
    assert lock_problems("e", "create index concurrently records_x on pgclaim.records (x);") == [
        "e: concurrent index on pgclaim.records in a transactional migration"]
    assert lock_problems("f", "-- transactional: false\n"
                         "create index concurrently if not exists records_x"
                         " on pgclaim.records (x);") == []
    assert lock_problems("g", "create table pgclaim.t (x int);\n"
                         "create unique index t_x on pgclaim.t (x);") == []


# -- the way back ---------------------------------------------------------------------------

OLD_CLIENT_SCRIPT = '''\
"""Uses a database with release 0.1.0's client: reports on records claimed before, claims
and completes the rest, reads the counts."""
import json
import sys

import pgclaim
from pgclaim import QueueClient

url, held = sys.argv[1], json.loads(sys.argv[2])
out = {"package": pgclaim.__file__, "completed": {}}
with QueueClient(url) as client:
    for worker_id, claims in held.items():
        out["completed"][worker_id] = client.complete(
            worker_id, [rid for rid, _ in claims], [token for _, token in claims])
    batch = client.claim("jobs", "w3", 100)
    out["claimed"] = [[r.id, r.lease_token] for r in batch]
    out["completed"]["w3"] = client.complete("w3", [r.id for r in batch],
                                             [r.lease_token for r in batch])
    out["stats"] = [[s.queue, s.pending, s.scheduled, s.running, s.completed, s.failed,
                     s.cancelled] for s in client.stats()]
print(json.dumps(out))
'''


def test_rollback_to_0_1_0_keeps_the_records(
    cluster_url: str, template_db: str, logins: Logins, database: str, old_client: Path,
    first_migration: Path, tmp_path: Path,
) -> None:
    installer_url = role_url(cluster_url, logins.installer, database)
    worker_url = role_url(cluster_url, logins.worker, database)
    admin_url = db_url(cluster_url, database)

    with psycopg.connect(cluster_url, autocommit=True) as su:
        su.execute(f"grant pgclaim_worker to {logins.worker}")
    install_0_1_0(installer_url, first_migration)
    # What 0.1.0 looks like, to come back to. Its objects belong to the role that installed
    # it, and the rollback runs as that role: the dumps compare as they are, owners included.
    release_0_1_0 = schema_dump(admin_url)
    assert "OWNER TO " + logins.installer in release_0_1_0

    with psycopg.connect(installer_url, autocommit=True) as inst, \
            psycopg.connect(worker_url, autocommit=True) as work:
        inst.execute("select pgclaim.configure(worker_timeout => '1 hour')")
        for queue in ("jobs", "other"):
            inst.execute("select pgclaim.create_queue(queue => %s, lease => %s)", (queue, LEASE))
        ids = [r[0] for r in inst.execute(
            "select pgclaim.enqueue_batch(queue => 'jobs', payloads => array(select"
            " jsonb_build_object('n', i) from generate_series(1, 9) as i))")]
        later = (datetime.now(UTC) + timedelta(days=1)).isoformat()
        scheduled = inst.execute("select pgclaim.enqueue(queue => 'jobs', payload => '{}',"
                                 " run_at => %s)", (later,)).fetchone()[0]
        claim = ("select id, lease_token from pgclaim.claim_batch(queue => 'jobs',"
                 " worker_id => %s, batch_size => %s)")
        finished = work.execute(claim, ("w0", 3)).fetchall()
        work.execute("select pgclaim.complete(worker_id => 'w0', ids => %s, lease_tokens => %s)",
                     ([finished[0][0]], [finished[0][1]]))
        work.execute("select pgclaim.fail(worker_id => 'w0', id => %s, error => 'no',"
                     " lease_token => %s, fatal => true)", finished[1][:2])
        inst.execute("select pgclaim.cancel(ids => %s)", ([finished[2][0]],))
        held = {"w1": work.execute(claim, ("w1", 2)).fetchall()}

    assert migrate(installer_url) == newer_than("0001_initial")
    assert schema_dump(admin_url) != release_0_1_0  # the comparison below can fail
    # Used as 0.2.0: records claimed under its random tokens, a per-queue grant, limits.
    with psycopg.connect(admin_url, autocommit=True) as admin, \
            psycopg.connect(worker_url, autocommit=True) as work:
        admin.execute("select pgclaim.grant_queue(queue => 'other', role => %s,"
                      " privileges => array['claim'])", (logins.worker,))
        admin.execute("select pgclaim.configure(max_ids => 500)")
        work.execute("select pgclaim.register_worker(worker_id => 'w2')")
        held["w2"] = work.execute(claim, ("w2", 2)).fetchall()
        assert admin.execute("select count(*) from pgclaim.records where id = any(%s)"
                             " and holder_role is not null",
                             ([rid for rid, _ in held["w2"]],)).fetchone()[0] == 2
        before = records(admin)

    # Back to 0.1.0 with the command docs/install.md gives.
    result = subprocess.run(
        [str(Path(sys.executable).parent / "yoyo"), "rollback", "--batch", "--no-config-file",
         "--database", yoyo_url(installer_url), "--revision", "0002_v0_2_0",
         str(ROOT / "migrations")],
        cwd=tmp_path, capture_output=True, text=True, check=False, timeout=PATIENCE)
    assert result.returncode == 0, result.stderr
    assert schema_dump(admin_url) == release_0_1_0
    with psycopg.connect(admin_url, autocommit=True) as admin:
        assert admin.execute("select migration_id from public._yoyo_migration").fetchall() == [
            ("0001_initial",)]
        assert admin.execute("select count(*) from pg_default_acl").fetchone() == (0,)
        after = records(admin)
    for row in before.values():
        del row["holder_role"]
        for added in ADDED_IN_0_3_0:
            del row[added]
    assert after == before, "the rollback changed records"

    # The 0.1.0 client works on it: the records held across both releases are completed
    # under their tokens (0.1.0's and 0.2.0's random ones), the rest claimed and completed.
    script = tmp_path / "old_client_script.py"
    script.write_text(OLD_CLIENT_SCRIPT)
    used = subprocess.run(
        [sys.executable, str(script), worker_url, json.dumps(held)],
        env={**os.environ, "PYTHONPATH": str(old_client)}, capture_output=True, text=True,
        check=False, timeout=PATIENCE)
    assert used.returncode == 0, used.stderr
    out = json.loads(used.stdout)
    assert out["package"] == str(old_client / "pgclaim" / "__init__.py")
    assert out["completed"] == {"w1": 2, "w2": 2, "w3": len(ids) - 7}
    assert sorted(rid for rid, _ in out["claimed"]) == ids[7:]
    # lease_token_seq is back, past the last token drawn under 0.1.0 (that of w1's claim)
    assert {token for _, token in out["claimed"]} == {held["w1"][0][1] + 1}
    assert out["stats"] == [["jobs", 0, 1, 0, len(ids) - 2, 1, 1], ["other", 0, 0, 0, 0, 0, 0]]

    # The current client refuses the older schema; upgrading again gives a fresh install's.
    with QueueClient(worker_url) as client, pytest.raises(SchemaMismatch):
        client.stats()
    assert migrate(installer_url) == newer_than("0001_initial")
    assert schema_dump(admin_url) == schema_dump(db_url(cluster_url, template_db))
    with psycopg.connect(admin_url, autocommit=True) as admin:
        assert admin.execute(f"select count(*) from {every_record(admin)} as r").fetchone() == (
            len(ids) + 1,)
        assert admin.execute("select status, run_at = %s from pgclaim.records where id = %s",
                             (later, scheduled)).fetchone() == ("pending", True)


# -- release 0.2.0: the upgrade with its worker running, and the way back -------------------

def same_columns(before: dict[int, dict[str, Any]], after: dict[int, dict[str, Any]],
                 ) -> list[str]:
    """The records of ``before`` that ``after`` lost or changed, in the columns ``before``
    has (a newer release may add columns)."""
    problems = [f"record {rid} is lost" for rid in sorted(set(before) - set(after))]
    problems += [f"record {rid} appeared" for rid in sorted(set(after) - set(before))]
    for rid in sorted(set(before) & set(after)):
        kept = {column: after[rid].get(column) for column in before[rid]}
        if kept != before[rid]:
            problems.append(f"record {rid} changed: {before[rid]} -> {kept}")
    return problems


def fill_0_2_0(installer_url: str, worker_url: str) -> dict[str, Any]:
    """A record of release 0.2.0 in every state, on queue 'jobs': completed, failed,
    cancelled, running under a registered worker id that is not running ('legacy-w'),
    twelve pending (the third asks its handler for a retry), one held by a dedup key, one
    scheduled for tomorrow. Returns their ids (and the legacy record's token)."""
    with psycopg.connect(installer_url, autocommit=True) as inst, \
            psycopg.connect(worker_url, autocommit=True) as work:
        inst.execute("select pgclaim.configure(worker_timeout => '1 hour')")
        inst.execute("select pgclaim.create_queue(queue => 'jobs', lease => %s)", (LEASE,))

        def enqueue(priority: int, run_at: str | None = None,
                    dedup_key: str | None = None) -> int:
            row = inst.execute("select pgclaim.enqueue(queue => 'jobs', payload => '{}',"
                               " priority => %s, run_at => %s, dedup_key => %s)",
                               (priority, run_at, dedup_key)).fetchone()
            assert row is not None
            return int(row[0])

        claim = ("select id, lease_token from pgclaim.claim_batch(queue => 'jobs',"
                 " worker_id => %s, batch_size => %s)")
        made: dict[str, Any] = {"done": enqueue(100), "failed": enqueue(100)}
        work.execute("select pgclaim.register_worker(worker_id => 'setup-w')")
        got = work.execute(claim, ("setup-w", 2)).fetchall()
        assert [rid for rid, _ in got] == [made["done"], made["failed"]]
        work.execute("select pgclaim.complete(worker_id => 'setup-w', ids => %s,"
                     " lease_tokens => %s)", ([got[0][0]], [got[0][1]]))
        work.execute("select pgclaim.fail(worker_id => 'setup-w', id => %s, error => 'bad',"
                     " lease_token => %s, fatal => true)", got[1])
        made["cancelled"] = enqueue(100)
        inst.execute("select pgclaim.cancel(ids => %s)", ([made["cancelled"]],))
        made["legacy"] = enqueue(90)
        work.execute("select pgclaim.register_worker(worker_id => 'legacy-w')")
        [(legacy, made["legacy_token"])] = work.execute(claim, ("legacy-w", 1)).fetchall()
        assert legacy == made["legacy"]
        made["pending"] = [int(r[0]) for r in inst.execute(
            "select pgclaim.enqueue_batch(queue => 'jobs', payloads => array(select"
            " jsonb_build_object('n', i, 'retry', i = 3) from generate_series(1, 12) as i),"
            " priority => 10)")]
        made["dedup"] = enqueue(5, dedup_key="dedup-1")
        made["scheduled"] = enqueue(0, (datetime.now(UTC) + timedelta(days=1)).isoformat())
    return made


def test_upgrade_with_a_worker_of_0_2_0_running(
    cluster_url: str, template_db: str, logins: Logins, database: str, client_0_2_0: Path,
    tmp_path: Path,
) -> None:
    installer_url = role_url(cluster_url, logins.installer, database)
    worker_url = role_url(cluster_url, logins.worker, database)
    admin_url = db_url(cluster_url, database)
    with psycopg.connect(cluster_url, autocommit=True) as su:
        su.execute(f"grant pgclaim_worker to {logins.worker}")
    install_with(client_0_2_0, installer_url)
    make_log_tables(admin_url)
    made = fill_0_2_0(installer_url, worker_url)
    pending, retried = made["pending"], made["pending"][2]

    old = WorkerProcess("old", tmp_path, worker_url, admin_url, client_0_2_0,
                        OLD_WORKER_ARGS)
    new: WorkerProcess | None = None
    admin = psycopg.connect(admin_url, autocommit=True)
    try:
        assert old.package() == str(client_0_2_0 / "pgclaim" / "__init__.py")
        assert admin.execute("select pgclaim.schema_version()").fetchone() == (2,)

        def state() -> str:
            rows = admin.execute(
                "select id, status, worker_id, lease_token, attempt from"
                " (select id, status, worker_id, lease_token, attempt from pgclaim.records"
                " union all select id, status, worker_id, lease_token, attempt"
                " from pgclaim.finished) as r order by id").fetchall()
            return "\n".join([old.log(), "--- records:", *map(str, rows)])

        def old_running() -> list[tuple[int, int, str]]:
            return admin.execute(
                "select id, lease_token, worker_id from pgclaim.records where status ="
                " 'running' and worker_id <> 'legacy-w' order by id").fetchall()

        wait_for("the old worker to hold four records, two of them in its handler",
                 lambda: len(old_running()) == 4 and len(handler_running(admin)) == 2,
                 details=state)
        in_flight = old_running()
        assert [rid for rid, _, _ in in_flight] == pending[:4]
        old_token, old_worker_id = in_flight[0][1], in_flight[0][2]
        before = records(admin)

        # -- the upgrade, with the current code, while the old worker holds its records ------
        assert migrate(installer_url) == newer_than("0002_v0_2_0")
        assert old.proc.poll() is None, old.log()
        assert admin.execute("select pgclaim.schema_version()").fetchone()[0] >= 3
        assert same_columns(before, records(admin)) == []
        # Counts work, for the current schema and for the old client.
        assert admin.execute(
            "select pending, scheduled, running, completed, failed, cancelled"
            " from pgclaim.queue_stats where queue = 'jobs'").fetchone() == (
            len(pending) - 4 + 1, 1, 5, 1, 1, 1)
        old_commands_work(client_0_2_0, worker_url)
        # A dedup_key is still held by its unfinished record.
        assert admin.execute("select pgclaim.enqueue(queue => 'jobs', payload => '{}',"
                             " dedup_key => 'dedup-1')").fetchone()[0] == made["dedup"]

        # -- the old worker finishes its records under their 0.2.0 lease and token -----------
        completed = [rid for rid in pending[:4] if rid != retried]
        open_gate(admin, pending[:4])
        wait_for("the old worker to report on the records it held", lambda: admin.execute(
            "select count(*) = 3 from pgclaim.finished where id = any(%s)"
            " and status = 'completed'", (completed,)).fetchone()[0]
            and admin.execute("select attempt = 1 and status = 'pending' from pgclaim.records"
                              " where id = %s", (retried,)).fetchone() == (True,),
            details=state)
        assert admin.execute(
            "select array_agg(distinct lease_token), array_agg(distinct worker_id)"
            " from pgclaim.finished where id = any(%s)", (completed,)).fetchone() == (
            [old_token], [old_worker_id])

        # ... and claims more under the new schema, until SIGTERM: it releases what it has
        # not started and finishes the rest.
        wait_for("the old worker to claim more records", lambda: len(old_running()) >= 3
                 and len(handler_running(admin)) == 2, details=state)
        held_now = [rid for rid, _, _ in old_running()]
        running_ids = stop_old_worker(old, admin, held_now, old_worker_id)

        # -- the record held by legacy-w since 0.2.0 finishes under its 0.2.0 token ----------
        with psycopg.connect(worker_url, autocommit=True) as work:
            report = ("select pgclaim.complete(worker_id => 'legacy-w', ids => %s,"
                      " lease_tokens => %s)")
            assert work.execute(report, ([made["legacy"]], [made["legacy_token"] ^ 1])
                                ).fetchone()[0] == 0
            assert work.execute(report, ([made["legacy"]], [made["legacy_token"]])
                                ).fetchone()[0] == 1

        # -- a worker of the current client drains the rest -----------------------------------
        new = drain_with_current_worker(tmp_path, worker_url, admin_url, admin)

        expected = processed_once(pending, completed + running_ids, retried, [made["dedup"]])
        expected |= {made[name]: (status, [], []) for name, status in (
            ("done", "completed"), ("failed", "failed"), ("cancelled", "cancelled"),
            ("legacy", "completed"), ("scheduled", "pending"))}
        assert final_problems(admin, expected) == []
        final = records(admin)
        for name in ("done", "failed", "cancelled", "scheduled"):
            assert same_columns({made[name]: before[made[name]]}, {made[name]: final[made[name]]}
                                ) == []
    finally:
        admin.close()
        old.kill()
        if new is not None:
            new.kill()

    # The upgraded schema is exactly a fresh install's (owners and grants included).
    assert schema_dump(admin_url) == schema_dump(db_url(cluster_url, template_db))


def test_rollback_to_0_2_0_keeps_the_records(
    cluster_url: str, template_db: str, logins: Logins, database: str, client_0_2_0: Path,
    tmp_path: Path,
) -> None:
    installer_url = role_url(cluster_url, logins.installer, database)
    worker_url = role_url(cluster_url, logins.worker, database)
    admin_url = db_url(cluster_url, database)
    with psycopg.connect(cluster_url, autocommit=True) as su:
        su.execute(f"grant pgclaim_worker to {logins.worker}")
    install_with(client_0_2_0, installer_url)
    release_0_2_0 = schema_dump(admin_url)
    made = fill_0_2_0(installer_url, worker_url)
    claim = ("select id, lease_token from pgclaim.claim_batch(queue => 'jobs',"
             " worker_id => %s, batch_size => %s)")
    with psycopg.connect(worker_url, autocommit=True) as work:
        work.execute("select pgclaim.register_worker(worker_id => 'w1')")
        held = {"w1": work.execute(claim, ("w1", 2)).fetchall()}

    assert migrate(installer_url) == newer_than("0002_v0_2_0")
    assert schema_dump(admin_url) != release_0_2_0  # the comparison below can fail
    # Used as the new release: records claimed under it.
    with psycopg.connect(worker_url, autocommit=True) as work:
        work.execute("select pgclaim.register_worker(worker_id => 'w2')")
        held["w2"] = work.execute(claim, ("w2", 2)).fetchall()
    with psycopg.connect(admin_url, autocommit=True) as admin:
        before = records(admin)

    result = subprocess.run(
        [str(Path(sys.executable).parent / "yoyo"), "rollback", "--batch", "--no-config-file",
         "--database", yoyo_url(installer_url), "--revision", newer_than("0002_v0_2_0")[0],
         str(ROOT / "migrations")],
        cwd=tmp_path, capture_output=True, text=True, check=False, timeout=PATIENCE)
    assert result.returncode == 0, result.stderr
    assert schema_dump(admin_url) == release_0_2_0
    with psycopg.connect(admin_url, autocommit=True) as admin:
        assert admin.execute("select migration_id from public._yoyo_migration order by 1"
                             ).fetchall() == [("0001_initial",), ("0002_v0_2_0",)]
        after = records(admin)
    assert same_columns(after, before) == [], "the rollback changed records"
    assert set(after) == set(before)

    # The 0.2.0 client works on it: the records held across both releases are completed
    # under their tokens, the rest claimed and completed.
    script = tmp_path / "old_client_script.py"
    script.write_text(OLD_CLIENT_SCRIPT)
    used = subprocess.run(
        [sys.executable, str(script), worker_url, json.dumps(held)],
        env={**os.environ, "PYTHONPATH": str(client_0_2_0)}, capture_output=True, text=True,
        check=False, timeout=PATIENCE)
    assert used.returncode == 0, used.stderr
    out = json.loads(used.stdout)
    assert out["package"] == str(client_0_2_0 / "pgclaim" / "__init__.py")
    assert out["completed"] == {"w1": 2, "w2": 2, "w3": len(made["pending"]) - 4 + 1}
    assert out["stats"] == [["jobs", 0, 1, 1, len(made["pending"]) + 2, 1, 1]]

    # The current client refuses the older schema; upgrading again gives a fresh install's.
    with QueueClient(worker_url) as client, pytest.raises(SchemaMismatch):
        client.stats()
    assert migrate(installer_url) == newer_than("0002_v0_2_0")
    assert schema_dump(admin_url) == schema_dump(db_url(cluster_url, template_db))
