"""Fencing into the application's own tables, with real processes: a worker stopped (SIGSTOP)
past its lease wakes up and writes its stale result into a table guarded by
``pgclaim.fence_trigger``: refused with PC006, while the new holder's write lands. Each worker
is a separate process using bare psycopg (any language's driver would do)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

import pgclaim

#: a worker process: claims one record of queue "fence" as WORKER_ID, says so, waits for a
#: line on stdin, then writes its result with the lease token of its claim and completes it in
#: one transaction; prints what happened ("landed N" or "refused SQLSTATE")
WORKER = r"""
import sys
import psycopg

dsn, worker_id, lease = sys.argv[1:4]
with psycopg.connect(dsn, autocommit=True) as conn:
    row = conn.execute(
        "select id, lease_token from pgclaim.claim_batch(queue => 'fence',"
        " worker_id => %s, batch_size => 1, lease => %s::interval)",
        (worker_id, lease)).fetchone()
    print("claimed", row[0], row[1], flush=True)
    sys.stdin.readline()
    try:
        with conn.transaction():
            conn.execute(
                "insert into app_results (record_id, lease_token, writer) values (%s, %s, %s)"
                " on conflict (record_id) do update"
                " set lease_token = excluded.lease_token, writer = excluded.writer",
                (row[0], row[1], worker_id))
            n = conn.execute(
                "select pgclaim.complete(worker_id => %s, ids => array[%s::bigint],"
                " lease_tokens => array[%s::bigint])", (worker_id, row[0], row[1])).fetchone()[0]
        print("landed", n, flush=True)
    except psycopg.Error as exc:
        print("refused", exc.sqlstate, flush=True)
"""


@pytest.fixture
def fenced(dsn: str) -> Iterator[psycopg.Connection[Any]]:
    """The queue "fence" with one record and the application's table with the trigger."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("select pgclaim.create_queue('fence', lease => '1 minute')")
        conn.execute("create table app_results (record_id bigint primary key,"
                     " lease_token bigint not null, writer text not null)")
        conn.execute("create trigger app_results_fence before insert or update on app_results"
                     " for each row execute function"
                     " pgclaim.fence_trigger('record_id', 'lease_token')")
        conn.execute("select pgclaim.enqueue('fence', '{}')")
        yield conn


def start_worker(dsn: str, worker_id: str, lease: str) -> tuple[subprocess.Popen[str], list[str]]:
    proc = subprocess.Popen([sys.executable, "-c", WORKER, dsn, worker_id, lease],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline().split()
    assert line[:1] == ["claimed"], line
    return proc, line


def go(proc: subprocess.Popen[str]) -> str:
    """Lets a worker write, and returns what it says."""
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write("go\n")
    proc.stdin.flush()
    out = proc.stdout.readline().strip()
    assert proc.wait(timeout=60) == 0
    return out


def wait_lease_over(conn: psycopg.Connection[Any], rid: int) -> None:
    """Waits on the database's own clock until the record's lease has ended."""
    deadline = time.monotonic() + 60
    while conn.execute("select clock_timestamp() > lease_until from pgclaim.records"
                       " where id = %s", [rid]).fetchone() != (True,):
        assert time.monotonic() < deadline, "the lease never ended"
        time.sleep(0.05)


def test_worker_stopped_past_its_lease_is_refused_and_new_holder_lands(
        dsn: str, fenced: psycopg.Connection[Any]) -> None:
    stale, (_, rid, old_token) = start_worker(dsn, "A", "1 second")
    try:
        os.kill(stale.pid, signal.SIGSTOP)
        _, status = os.waitpid(stale.pid, os.WUNTRACED)
        assert os.WIFSTOPPED(status)
        wait_lease_over(fenced, int(rid))
        # B's claim takes the expired lease back (the claim's sweep) and claims the record.
        holder, (_, rid_b, new_token) = start_worker(dsn, "B", "1 minute")
        assert rid_b == rid and new_token != old_token
        assert go(holder) == "landed 1"
        os.kill(stale.pid, signal.SIGCONT)
        assert go(stale) == "refused PC006"
    finally:
        if stale.poll() is None:
            os.kill(stale.pid, signal.SIGCONT)
            stale.kill()
            stale.wait()
    assert fenced.execute("select record_id, lease_token, writer from app_results").fetchall() == [
        (int(rid), int(new_token), "B")]
    assert fenced.execute("select status::text, attempt, worker_id from pgclaim.finished"
                          " where id = %s", [int(rid)]).fetchone() == ("completed", 2, "B")


def test_a_write_that_passed_the_fence_keeps_the_claim_until_it_commits(
        dsn: str, fenced: psycopg.Connection[Any]) -> None:
    """holds() locks the record: while the writer's transaction is open, neither a claim's
    sweep nor reclaim_orphans takes it back, even past the lease; after it ends, they do."""
    row = fenced.execute("select id, lease_token from pgclaim.claim_batch('fence', 'A', 1,"
                         " lease => '1 second')").fetchone()
    assert row is not None
    rid, token = row
    with psycopg.connect(dsn) as writer, psycopg.connect(dsn, autocommit=True) as other:
        writer.execute("insert into app_results values (%s, %s, 'A')", (rid, token))
        wait_lease_over(fenced, rid)
        assert other.execute("select count(*) from pgclaim.claim_batch('fence', 'B', 1)"
                             ).fetchone() == (0,)
        assert other.execute("select pgclaim.reclaim_orphans()").fetchone() == (0,)
        assert other.execute("select pgclaim.holds(%s, %s)", (rid, token)).fetchone() == (False,)
        writer.commit()
        assert other.execute("select id, attempt from pgclaim.claim_batch('fence', 'B', 1)"
                             ).fetchall() == [(rid, 2)]


def test_client_holds(dsn: str, fenced: psycopg.Connection[Any]) -> None:
    with pgclaim.QueueClient(dsn) as client:
        [rec] = client.claim("fence", "w", 1)
        assert client.holds(rec.id, rec.lease_token) is True
        assert client.holds(rec.id, rec.lease_token + 1) is False
        with psycopg.connect(dsn) as conn:
            assert client.holds(rec.id, rec.lease_token, conn=conn) is True
            conn.execute("insert into app_results values (%s, %s, 'w')", (rec.id, rec.lease_token))
        client.complete("w", [rec])
        with psycopg.connect(dsn, autocommit=True) as conn, pytest.raises(
                psycopg.DatabaseError) as info:
            conn.execute("update app_results set writer = 'late'")
        assert info.value.sqlstate == "PC006"
        assert isinstance(pgclaim.errors.translate(info.value), pgclaim.LeaseNotHeld)


# --------------------------------------------------- Worker(transactional=True)

#: a transactional handler for ``pgclaim worker --transactional``: says it started (a file
#: named after the record in FENCE_DIR), waits for the file "go" there, then writes its
#: result into app_results in the worker's transaction, which completes the record
HANDLER = r"""
import os
import time
from pathlib import Path


def handle(record, conn):
    folder = Path(os.environ["FENCE_DIR"])
    (folder / f"started-{os.environ['WRITER']}").write_text(f"{record.id} {record.lease_token}")
    while not (folder / "go").exists():
        time.sleep(0.02)
    conn.execute(
        "insert into app_results (record_id, lease_token, writer) values (%s, %s, %s)"
        " on conflict (record_id) do update"
        " set lease_token = excluded.lease_token, writer = excluded.writer",
        (record.id, record.lease_token, os.environ["WRITER"]))
"""


def cli_worker(dsn: str, folder: Path, writer: str) -> subprocess.Popen[str]:
    """``pgclaim worker --transactional`` of queue "fence", 1 s leases, until it is empty."""
    env = {**os.environ, "FENCE_DIR": str(folder), "WRITER": writer,
           "PYTHONPATH": f"{folder}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    return subprocess.Popen(
        [str(Path(sys.executable).with_name("pgclaim")), "--database", dsn, "worker",
         "fence_handler:handle", "--queue", "fence", "--transactional", "--lease", "1s",
         "--heartbeat-every", "0.2", "--poll-interval", "0.2", "--until-empty"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_transactional_worker_stopped_past_its_lease_commits_nothing(
        dsn: str, fenced: psycopg.Connection[Any], tmp_path: Path) -> None:
    """A ``pgclaim worker --transactional`` stopped (SIGSTOP) inside its handler past its
    lease: another worker takes the record, writes and completes it; the first, let go on,
    is refused by the fence, its transaction (write and completion) rolls back, and it
    counts nothing completed."""
    (tmp_path / "fence_handler.py").write_text(HANDLER)
    stale = cli_worker(dsn, tmp_path, "A")
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "started-A").exists():
            assert time.monotonic() < deadline and stale.poll() is None, "A never started"
            time.sleep(0.02)
        rid, old_token = map(int, (tmp_path / "started-A").read_text().split())
        os.kill(stale.pid, signal.SIGSTOP)
        _, status = os.waitpid(stale.pid, os.WUNTRACED)
        assert os.WIFSTOPPED(status)
        wait_lease_over(fenced, rid)
        (tmp_path / "go").touch()
        holder = cli_worker(dsn, tmp_path, "B")
        out_b, _ = holder.communicate(timeout=60)
        assert holder.returncode == 0, out_b
        assert "completed 1" in out_b, out_b
        os.kill(stale.pid, signal.SIGCONT)
        out_a, _ = stale.communicate(timeout=60)
    finally:
        if stale.poll() is None:
            os.kill(stale.pid, signal.SIGCONT)
            stale.kill()
            stale.wait()
    assert stale.returncode == 0, out_a
    assert "completed 0" in out_a, out_a
    [(_, new_token, writer)] = fenced.execute(
        "select record_id, lease_token, writer from app_results").fetchall()
    assert (writer, new_token != old_token) == ("B", True)
    assert fenced.execute("select status::text, attempt from pgclaim.finished where id = %s",
                          [rid]).fetchone() == ("completed", 2)


@pytest.fixture
def tx_client(dsn: str) -> Iterator[pgclaim.QueueClient]:
    with pgclaim.QueueClient(dsn, max_size=6) as client:
        client.create_queue("tx", max_attempts=3, backoff_base=0.001, backoff_max=0.01)
        yield client


def tx_worker(client: pgclaim.QueueClient, handler: Any) -> pgclaim.Worker:
    return pgclaim.Worker(client, "tx", handler, concurrency=3, batch_size=10,
                          poll_interval=0.1, install_signals=False, transactional=True)


def test_transactional_handler_writes_and_completes_together(
        dsn: str, tx_client: pgclaim.QueueClient, fenced: psycopg.Connection[Any]) -> None:
    """Each record's write and completion commit together; a handler that raises rolls its
    write back and its record is retried; a record whose claim ended while its handler ran
    (cancelled here) commits nothing and counts as lost."""
    fenced.execute("create table tx_results (record_id bigint, attempt integer)")
    ids = tx_client.enqueue_many("tx", [{"n": n} for n in range(20)])
    doomed = ids[7]

    def handler(record: pgclaim.Claimed, conn: psycopg.Connection[Any]) -> None:
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
        conn.execute("insert into tx_results values (%s, %s)", (record.id, record.attempt))
        if record.payload["n"] % 5 == 0 and record.attempt == 1:
            raise RuntimeError("first attempts of every fifth record fail")
        if record.id == doomed:
            with psycopg.connect(dsn, autocommit=True) as other:
                other.execute("select pgclaim.cancel(ids => array[%s::bigint])", (record.id,))

    completed = lost = retried = 0
    deadline = time.monotonic() + 60
    # until_empty ends at the first empty claim: a retried record may still wait out its
    # (millisecond) backoff then
    while fenced.execute("select count(*) from pgclaim.records where queue = 'tx'"
                         ).fetchone() != (0,):
        assert time.monotonic() < deadline, "the queue never drained"
        stats = tx_worker(tx_client, handler).run(until_empty=True)
        completed, lost, retried = (completed + stats.completed, lost + stats.lost,
                                    retried + stats.retried)
    rows = fenced.execute("select record_id, attempt from tx_results order by 1").fetchall()
    expected = [(rid, 2 if n % 5 == 0 else 1) for n, rid in enumerate(ids) if rid != doomed]
    assert rows == expected
    assert (completed, lost, retried) == (19, 1, 4)
    assert dict(fenced.execute(
        "select status::text, count(*) from pgclaim.finished where queue = 'tx' group by 1"
    ).fetchall()) == {"completed": 19, "cancelled": 1}


def test_transactional_worker_refuses_what_it_cannot_run(dsn: str) -> None:
    async def coroutine(record: pgclaim.Claimed, conn: Any) -> None:
        pass

    with pgclaim.QueueClient(dsn) as client, pytest.raises(ValueError, match="coroutine"):
        pgclaim.Worker(client, "q", coroutine, transactional=True)
    with psycopg.connect(dsn, autocommit=True) as conn, \
            pgclaim.QueueClient(conn) as client, pytest.raises(ValueError, match="pool"):
        pgclaim.Worker(client, "q", lambda record, conn: None, transactional=True)
    with pytest.raises(ValueError, match="AsyncWorker does not take transactional"):
        pgclaim.AsyncWorker(pgclaim.AsyncQueueClient(dsn), "q", coroutine, transactional=True)
