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
