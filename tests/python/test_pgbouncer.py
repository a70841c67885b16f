"""Workers and producers through PgBouncer in transaction pooling mode (docs/pgbouncer.md).

A private cluster whose ``max_connections`` is far below the number of workers, a PgBouncer
of the test's own in front of it on a loopback port, 40 workers and two producers going
through it: a ledger of the handlers' runs shows every record done exactly once. LISTEN
cannot work through the pooler: the workers find that out and poll, except the one given a
direct connection for LISTEN (``listen_dsn``).
"""
from __future__ import annotations

import collections
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from pgcluster import PrivateCluster, free_port, load_pgclaim

import pgclaim
from pgclaim import Claimed, Worker

HERE = Path(__file__).resolve().parent
PGCLAIM = str(Path(sys.executable).with_name("pgclaim"))
#: Debian's package (``make deps`` installs it when run as root)
PGBOUNCER = shutil.which("pgbouncer") or next(
    (p for p in ("/usr/sbin/pgbouncer",) if os.access(p, os.X_OK)), None)
WORKERS = 40
MAX_CONNECTIONS = 10
POOL_SIZE = 4
#: what a client behind PgBouncer in transaction mode needs: no prepared statements, no
#: session settings in the startup packet (set the timeouts on the role instead)
BEHIND_POOLER: dict[str, Any] = {"prepare_threshold": None, "statement_timeout": None,
                                 "min_size": 1, "max_size": 2}

pytestmark = pytest.mark.skipif(
    PGBOUNCER is None, reason="pgbouncer not installed (apt-get install pgbouncer, or make deps "
    "as root)")


def _as_owner(cmd: list[str]) -> list[str]:
    # PgBouncer refuses to run as root, as PostgreSQL does.
    return ["runuser", "-u", "postgres", "--", *cmd] if os.getuid() == 0 else cmd


class Bouncer:
    """A PgBouncer process of the test's own, in transaction pooling mode, in front of one
    database; stopped and its files removed by ``close``."""

    def __init__(self, server: PrivateCluster, dbname: str) -> None:
        assert PGBOUNCER is not None
        self.dir = Path(tempfile.mkdtemp(prefix="pgclaim-bouncer-"))
        if os.getuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        self.port = free_port()
        (self.dir / "users.txt").write_text(f'"{server.user}" ""\n')
        (self.dir / "pgbouncer.ini").write_text(
            "[databases]\n"
            f"app = host=127.0.0.1 port={server.port} dbname={dbname} user={server.user}\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {self.port}\nunix_socket_dir =\n"
            f"auth_type = trust\nauth_file = {self.dir}/users.txt\n"
            "pool_mode = transaction\n"
            f"default_pool_size = {POOL_SIZE}\nmax_db_connections = {POOL_SIZE}\n"
            "reserve_pool_size = 0\nmax_client_conn = 500\n"
            f"logfile = {self.dir}/pgbouncer.log\n")
        for f in self.dir.iterdir():
            if os.getuid() == 0:
                shutil.chown(f, "postgres", "postgres")
        self.user = server.user
        self.proc = subprocess.Popen(_as_owner([PGBOUNCER, str(self.dir / "pgbouncer.ini")]),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 30
        while True:
            try:
                with psycopg.connect(self.url, connect_timeout=2, prepare_threshold=None):
                    break
            except psycopg.OperationalError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.close()
                    raise RuntimeError("pgbouncer did not start: " + self.log()) from None
                time.sleep(0.1)

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/app"

    def log(self) -> str:
        path = self.dir / "pgbouncer.log"
        return path.read_text()[-2000:] if path.exists() else ""

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def bounced() -> Iterator[tuple[Bouncer, str]]:
    """PgBouncer in front of a pgclaim database on a private cluster with few connections;
    yields it and the database's direct URL."""
    server = PrivateCluster(max_connections=MAX_CONNECTIONS)
    try:
        direct = load_pgclaim(server.url, "pgclaim_bounced")
        bouncer = Bouncer(server, "pgclaim_bounced")
        try:
            yield bouncer, direct
        finally:
            bouncer.close()
    finally:
        server.close()


def test_forty_workers_and_producers_through_pgbouncer(
        bounced: tuple[Bouncer, str], caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    bouncer, direct = bounced
    caplog.set_level(logging.WARNING, logger="pgclaim")
    monkeypatch.setattr(pgclaim.worker, "LISTEN_PROBE_WAIT", 2.0)
    n = 3000
    ledger: collections.Counter[int] = collections.Counter()
    lock = threading.Lock()

    def handler(rec: Claimed) -> None:
        with lock:
            ledger[rec.payload["n"]] += 1

    def fell_back() -> list[str]:
        return [m for m in (r.getMessage() for r in list(caplog.records))
                if "polling every" in m and "PgBouncer" in m]

    with psycopg.connect(direct, autocommit=True) as check:
        assert int(check.execute("show max_connections").fetchone()[0]) < WORKERS  # type: ignore[index]
    clients = [pgclaim.QueueClient(bouncer.url, **BEHIND_POOLER) for _ in range(WORKERS + 2)]
    try:
        producers, worker_clients = clients[:2], clients[2:]
        producers[0].create_queue("bq", lease=600)
        # Worker 0 listens on a direct connection; the others find LISTEN does not work
        # through the pooler, and poll.
        workers = [Worker(c, "bq", handler, concurrency=2, batch_size=10, poll_interval=0.2,
                          heartbeat_every=1.0, install_signals=False,
                          listen_dsn=direct if i == 0 else None)
                   for i, c in enumerate(worker_clients)]
        threads = [threading.Thread(target=w.run) for w in workers]
        for t in threads:
            t.start()

        def produce(client: pgclaim.QueueClient, start: int) -> None:
            for i in range(start, n, 200):  # the two producers take every other hundred
                client.enqueue_many("bq", [{"n": j} for j in range(i, min(i + 50, n))])
                client.enqueue_many("bq", [{"n": j} for j in range(i + 50, min(i + 100, n))])
                time.sleep(0.01)

        makers = [threading.Thread(target=produce, args=(c, s))
                  for c, s in zip(producers, (0, 100), strict=True)]
        for t in makers:
            t.start()
        deadline = time.monotonic() + 240
        try:
            for t in makers:
                t.join(120)
            while (sum(ledger.values()) < n or sum(w.stats.completed for w in workers) < n):
                assert time.monotonic() < deadline, "timed out waiting for the records"
                time.sleep(0.1)
            while len(fell_back()) < WORKERS - 1 and time.monotonic() < deadline:
                time.sleep(0.1)  # the probes of LISTEN end (LISTEN_PROBE_WAIT)
            assert workers[0].listening
            assert not any(w.listening for w in workers[1:])
        finally:
            for w in workers:
                w.stop()
            for t in threads:
                t.join(60)
        assert not any(t.is_alive() for t in threads)
    finally:
        for c in clients:
            c.close()
    assert sorted(ledger) == list(range(n))
    assert [k for k, v in ledger.items() if v != 1] == []  # nothing done twice
    assert sum(w.stats.completed for w in workers) == n
    assert sum(w.stats.lost for w in workers) == 0
    assert len(fell_back()) == WORKERS - 1
    with psycopg.connect(direct, autocommit=True) as check:
        rows = check.execute("select status::text, count(*) from public.every_record"
                             " group by 1").fetchall()
        assert rows == [("completed", n)]
        # the pooler kept the server's connections within its pool
        assert int(check.execute(  # type: ignore[index]
            "select count(*) from pg_stat_activity where backend_type = 'client backend'"
        ).fetchone()[0]) <= POOL_SIZE + 1


def test_cli_worker_through_pgbouncer_is_woken_on_its_listen_dsn(
        bounced: tuple[Bouncer, str]) -> None:
    """``pgclaim worker --database <PgBouncer> --listen-dsn <direct>``: its calls go through
    the pooler, its LISTEN straight to the server, so an enqueue through the pooler wakes it
    although it would poll only once an hour."""
    bouncer, direct = bounced
    with psycopg.connect(direct, autocommit=True) as conn:
        conn.execute("select pgclaim.create_queue('cliq')")
    proc = subprocess.Popen(
        [PGCLAIM, "worker", "workers_fixture.handlers:noop", "-q", "cliq",
         "--database", bouncer.url, "--transaction-pooling", "--listen-dsn", direct,
         "--poll-interval", "3600",
         "--reclaim-every", "3600"],
        env={**os.environ, "PYTHONPATH": str(HERE)}, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True)
    try:
        with psycopg.connect(direct, autocommit=True) as conn:
            def count(sql: str) -> int:
                return int(conn.execute(sql).fetchone()[0])  # type: ignore[index]

            deadline = time.monotonic() + 60
            # listening on the queue's channel, over a direct connection: the probe went
            # through the pooler and came back
            while count("select count(*) from pg_stat_activity"
                        " where query = 'listen \"pgclaim_cliq\"'") != 1:
                assert proc.poll() is None, proc.communicate()[1]
                assert time.monotonic() < deadline, "the worker never listened"
                time.sleep(0.05)
            with pgclaim.QueueClient(bouncer.url, **BEHIND_POOLER) as producer:
                producer.enqueue_many("cliq", [{"n": 1}, {"n": 2}])
            while count("select count(*) from public.every_record where queue = 'cliq'"
                        " and status = 'completed'") != 2:
                assert proc.poll() is None, proc.communicate()[1]
                assert time.monotonic() < deadline, "the notification did not wake the worker"
                time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "completed 2" in err and "polling every" not in err
