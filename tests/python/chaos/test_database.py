"""Database faults: crash and restart, terminated backends, timeouts, idle transactions,
connection exhaustion, a full disk, a transaction holding the xmin horizon, reclaim races."""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator

import psycopg
import pytest
from faults import mount_available, small_tmpfs
from harness import ChaosRun
from pgcluster import PrivateCluster, load_pgclaim

pytestmark = pytest.mark.chaos


@contextlib.contextmanager
def every(period: float, action: Callable[[], object]) -> Iterator[list[int]]:
    """Runs ``action`` every ``period`` seconds in a thread while the block runs."""
    stop = threading.Event()
    count = [0]

    def loop() -> None:
        while not stop.wait(period):
            with contextlib.suppress(psycopg.Error):
                action()
                count[0] += 1

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    try:
        yield count
    finally:
        stop.set()
        t.join(5)


@pytest.mark.parametrize("down", [2.0, pytest.param(10.0, marks=pytest.mark.slow)])
def test_database_down(chaos: Callable[..., ChaosRun], report: Callable[..., None],
                       private_cluster: PrivateCluster, down: float) -> None:
    """pg_ctl stop -m immediate, down for a while, start: workers reconnect by themselves."""
    db = load_pgclaim(private_cluster.url, "chaos")
    run = chaos(db, lease=2.0)
    run.enqueue(400)
    # Heartbeats at a tenth of the lease: only the records held at the crash may expire.
    run.start_workers(4, sleep=0.02, batch_size=5, heartbeat_every=0.2)
    time.sleep(1.0)
    private_cluster.crash()
    crashed = time.time()  # the server is down: nothing is claimed from here to the start
    time.sleep(down)
    private_cluster.start()
    end = time.time()
    run.enqueue(20)
    assert run.wait_done(90), run.logs()
    result = run.audit(allowed_twice=run.in_flight_at(crashed), fault_end=end)
    report(f"database down {down:.0f} s (crash, restart)", result, run)


def _terminate(dsn: str) -> Callable[[], object]:
    dbname = dsn.rsplit("/", 1)[1]

    def kill() -> object:
        with psycopg.connect(dsn, autocommit=True) as conn:
            return conn.execute(
                "select count(pg_terminate_backend(pid)) from pg_stat_activity"
                " where datname = %s and application_name like 'pgclaim %%'"
                " and pid <> pg_backend_pid()", (dbname,)).fetchone()
    return kill


def test_backends_terminated_every_200ms(chaos: Callable[..., ChaosRun], dsn: str,
                                         report: Callable[..., None]) -> None:
    run = chaos(lease=2.0)
    run.enqueue(400)
    run.start_workers(4, sleep=0.01, batch_size=5)
    with every(0.2, _terminate(dsn)) as count:
        time.sleep(4.0)
    end = time.time()
    run.enqueue(20)
    assert run.wait_done(90), run.logs()
    # every termination may cut one in-flight batch per worker
    result = run.audit(allowed_twice=None, fault_end=end)
    report(f"backends terminated every 200 ms ({count[0]} rounds)", result, run)


def test_statement_and_lock_timeouts(chaos: Callable[..., ChaosRun], dsn: str,
                                     report: Callable[..., None]) -> None:
    """A session takes an exclusive lock on the records table for 0.6 s every second: the
    workers' calls hit lock_timeout (55P03) and statement_timeout (57014) and retry."""
    dbname = dsn.rsplit("/", 1)[1]
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'alter database "{dbname}" set lock_timeout = \'150ms\'')
        conn.execute(f'alter database "{dbname}" set statement_timeout = \'300ms\'')
    run = chaos(lease=2.0)
    run.enqueue(300)
    run.start_workers(3, sleep=0.01, batch_size=5, statement_timeout=0.3)

    def lock() -> None:
        with psycopg.connect(dsn) as c:
            c.execute("set local lock_timeout = 0")
            c.execute("set local statement_timeout = 0")
            c.execute("lock table pgclaim.records in access exclusive mode")
            time.sleep(0.6)

    with every(1.0, lock) as count:
        time.sleep(4.0)
    end = time.time()
    run.enqueue(20)
    assert run.wait_done(90), run.logs()
    result = run.audit(allowed_twice=None, fault_end=end)
    report(f"lock and statement timeouts ({count[0]} table locks)", result, run)


def test_idle_in_transaction(chaos: Callable[..., ChaosRun], dsn: str,
                             report: Callable[..., None]) -> None:
    """A session locks 20 records and goes idle in its transaction; the server ends it after
    idle_in_transaction_session_timeout and the records are processed."""
    run = chaos(lease=30.0)  # no lease expires in this row
    ids = run.enqueue(100)
    idle = psycopg.connect(dsn)
    idle.execute("set idle_in_transaction_session_timeout = '1500ms'")
    # Taken before the lock: the connection goes idle after it, so the server ends it (and
    # the lock goes) 1.5 s after this at the earliest.
    start = time.time()
    idle.execute("select id from pgclaim.records where id = any(%s) for update", (ids[:20],))
    run.start_workers(3, sleep=0.01, batch_size=5)
    try:
        assert run.wait_done(60), run.logs()
    finally:
        idle.close()
    done_at = float(run.scalar(
        "select extract(epoch from max(at)) from chaos_audit.transitions"
        " where record_id = any(%s) and new_status = 'completed'", (ids[:20],)))
    result = run.audit(allowed_twice=0, fault_end=start + 1.5)
    report("idle in transaction holding 20 rows (1.5 s timeout)", result, run)
    assert done_at >= start + 1.0, "locked records were handed out under the lock"


def test_server_connection_exhaustion(chaos: Callable[..., ChaosRun],
                                      report: Callable[..., None]) -> None:
    """Another role fills max_connections for 3 s: connects fail with 53300; workers wait."""
    cluster = PrivateCluster(max_connections=30,
                             extra_conf="superuser_reserved_connections = 0")
    hogs: list[psycopg.Connection[object]] = []
    run: ChaosRun | None = None
    try:
        db = load_pgclaim(cluster.url, "chaos")
        with psycopg.connect(cluster.url, autocommit=True) as conn:
            conn.execute("create role hog login")
        run = chaos(db, lease=2.0)
        run.enqueue(300)
        run.start_workers(3, sleep=0.02, batch_size=5, pool_size=2)
        time.sleep(0.5)
        _terminate(db)()  # the workers must open new connections
        hog_url = cluster.url.replace(f"{cluster.user}@", "hog@")
        refused = None
        while True:
            try:
                hogs.append(psycopg.connect(hog_url, connect_timeout=3))
            except psycopg.OperationalError as exc:
                refused = exc
                break
        assert refused is not None and "too many" in str(refused).lower(), refused
        assert refused.sqlstate in (None, "53300")
        time.sleep(3.0)
        for h in hogs:
            h.close()
        hogs.clear()
        end = time.time()
        run.enqueue(20)
        assert run.wait_done(90), run.logs()
        result = run.audit(allowed_twice=None, fault_end=end)
        report("server connections exhausted 3 s", result, run)
    finally:
        for h in hogs:
            h.close()
        if run is not None:
            run.stop_all()
        cluster.close()


MOUNT_REASON = mount_available()


@pytest.mark.needs_root
@pytest.mark.skipif(MOUNT_REASON is not None, reason=f"tmpfs: {MOUNT_REASON}")
def test_disk_full(chaos: Callable[..., ChaosRun], dsn: str,
                   report: Callable[..., None]) -> None:
    """The records table lives on a small tmpfs that fills up: writes fail with 53100
    (DiskFull), the server stays up, and work resumes when space comes back."""
    run = chaos(lease=2.0)
    with small_tmpfs("4m") as mnt:
        space = f"chaos_full_{os.getpid()}"
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f"create tablespace {space} location '{mnt}'")
        try:
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute(f"alter table pgclaim.records set tablespace {space}")
            run.enqueue(300, lambda i: {"pad": "x" * 200})
            run.start_workers(3, sleep=0.01, batch_size=5)
            time.sleep(0.5)
            filler = mnt / "filler"
            subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=64k"],
                           capture_output=True, check=False)
            with pytest.raises(psycopg.errors.DiskFull):
                run.enqueue(3000, lambda i: {"pad": "y" * 500})
            time.sleep(2.0)
            filler.unlink()
            end = time.time()
            run.enqueue(20)
            assert run.wait_done(30), run.logs()
            result = run.audit(allowed_twice=None, fault_end=end)
            report("disk full (tablespace on a full tmpfs)", result, run)
        finally:
            run.stop_all()
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute("alter table pgclaim.records set tablespace pg_default")
                conn.execute(f"drop tablespace if exists {space}")


def test_long_transaction_holding_xmin_is_reported(
        chaos: Callable[..., ChaosRun], dsn: str, report: Callable[..., None]) -> None:
    """A repeatable-read transaction holds the xmin horizon while records churn: dead rows
    cannot be vacuumed, and pgclaim.health() names the transaction."""
    run = chaos(lease=30.0)  # no lease expires in this row
    holder = psycopg.connect(dsn)
    try:
        holder.execute("set transaction isolation level repeatable read")
        holder.execute("select count(*) from public.every_record").fetchone()
        run.enqueue(500)
        run.start_workers(3, sleep=0.001, batch_size=20)
        assert run.wait_done(60), run.logs()
        time.sleep(1.2)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("vacuum pgclaim.records")
            dead = conn.execute("select n_dead_tup from pg_stat_user_tables"
                                " where relid = 'pgclaim.records'::regclass").fetchone()[0]
            health = conn.execute(
                "select pgclaim.health(max_xact_age => interval '1 second')").fetchone()[0]
        reasons = " ".join(health.get("reasons", []))
        assert "holds back vacuum" in reasons, health
        assert health["status"] != "ok", health
        assert dead > 0, "vacuum removed the churned rows despite the old snapshot"
    finally:
        holder.close()
    result = run.audit(allowed_twice=0)
    report("transaction holding xmin (health reports it)", result, run, dead_rows=dead)


def test_reclaim_racing_itself_and_killed(chaos: Callable[..., ChaosRun], dsn: str,
                                          report: Callable[..., None]) -> None:
    """200 expired leases; eight sessions run reclaim_orphans at once, one of them is
    terminated mid-statement, and every record still comes back exactly once."""
    run = chaos(lease=30.0)  # the ghost's leases expire; the workers' do not
    ids = run.enqueue(200)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("select count(*) from pgclaim.claim_batch('chaos', 'ghost', 200,"
                     " interval '100 milliseconds')")
    time.sleep(0.3)
    barrier = threading.Barrier(8)
    results: list[object] = []

    def reclaim(i: int) -> None:
        with psycopg.connect(dsn, autocommit=True) as c:
            if i == 0:
                c.execute("set application_name = 'pgclaim reclaimer-victim'")
            barrier.wait()
            try:
                # The victim's statement sleeps until it is terminated.
                results.append(c.execute(
                    "select pgclaim.reclaim_orphans(max_records => 25)"
                    " from pg_sleep(case when %s = 0 then 60 else 0 end)", (i,)).fetchone()[0])
            except psycopg.OperationalError as exc:
                results.append(exc)

    threads = [threading.Thread(target=reclaim, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    with psycopg.connect(dsn, autocommit=True) as conn:
        assert run.wait_until(lambda: conn.execute(
            "select pg_terminate_backend(pid) from pg_stat_activity"
            " where application_name = 'pgclaim reclaimer-victim'"
            " and wait_event = 'PgSleep'").fetchone() is not None, 30), "no victim in pg_sleep"
    for t in threads:
        t.join(30)
    assert any(isinstance(r, psycopg.OperationalError) for r in results), results
    run.start_workers(3, sleep=0.001, batch_size=10)
    assert run.wait_done(60), run.logs()
    back = run.scalar("select count(*) from chaos_audit.transitions where record_id = any(%s)"
                      " and worker_id = 'ghost' and old_status = 'running'"
                      " and new_status = 'pending'", (ids,))
    assert back == 200
    result = run.audit(allowed_twice=0)
    report("reclaim racing itself, one reclaimer killed", result, run)


def test_sigkill_during_reclaim_worker(chaos: Callable[..., ChaosRun],
                                       report: Callable[..., None], orphan_slack: float) -> None:
    """Workers whose first act is a reclaim are killed right away, over and over."""
    run = chaos(lease=0.5)
    run.enqueue(100)
    for _ in range(3):
        w = run.start_workers(1, sleep=0.01, batch_size=10, reclaim_every=0.1)[0]
        time.sleep(0.4)
        run.kill(w, signal.SIGKILL)
    # The workers that finish hold long leases: only the killed ones' records can expire.
    run.start_workers(2, sleep=0.01, batch_size=10, lease=30.0)
    assert run.wait_done(60), run.logs()
    in_flight = sum(len(k.held) for k in run.kills)
    result = run.audit(allowed_twice=in_flight, orphan_bound=0.5 + 0.2 + orphan_slack)
    report("workers killed while reclaiming, 3 times", result, run)
