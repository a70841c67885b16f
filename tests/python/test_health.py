"""health(): each reason caused for real and named with its facts; a long transaction counts
only when it holds back this database's vacuum."""
from __future__ import annotations

import subprocess
import sys
import time
from typing import Any

import psycopg
from pgdb import create_database, db_url, drop_database, freeze_clock


def reasons(dsn: str) -> list[str]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("select pgclaim.health(max_xact_age => '1 second')").fetchone()
        assert row is not None
        return list(row[0]["reasons"])


def test_long_transaction_in_another_database_is_not_ours(
    dsn: str, cluster_url: str, template_db: str
) -> None:
    other = create_database(cluster_url, template_db)
    try:
        with psycopg.connect(db_url(cluster_url, other)) as elsewhere:
            elsewhere.execute("select txid_current()")  # holds an xid in the other database
            time.sleep(1.5)
            assert not [r for r in reasons(dsn) if "holds back vacuum" in r]
    finally:
        drop_database(cluster_url, other)


def test_long_transaction_in_this_database_degrades(dsn: str) -> None:
    with psycopg.connect(dsn) as here:
        here.execute("select txid_current()")
        time.sleep(1.5)
        with psycopg.connect(dsn, autocommit=True) as conn:
            row = conn.execute("select pgclaim.health(max_xact_age => '1 second')").fetchone()
        assert row is not None
        health = row[0]
        assert health["status"] == "degraded"
        assert any("holds back vacuum" in r for r in health["reasons"])
    assert not [r for r in reasons(dsn) if "holds back vacuum" in r]


def health(dsn: str, **params: str) -> dict[str, Any]:
    args = ", ".join(f"{k} => %({k})s" for k in params)
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(f"select pgclaim.health({args})", params).fetchone()
    assert row is not None
    return dict(row[0])


def problems(doc: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [p for p in doc["problems"] if p["kind"] == kind]


def test_old_transaction_is_named_with_what_ends_it(dsn: str) -> None:
    with psycopg.connect(dsn, application_name="forgotten-report") as here:
        here.execute("select txid_current()")
        pid = here.info.backend_pid
        with psycopg.connect(dsn, autocommit=True) as conn:
            deadline = time.monotonic() + 60
            while conn.execute("select now() - xact_start > interval '1 second'"
                               " from pg_stat_activity where pid = %s", [pid]).fetchone() != (
                                   True,):
                assert time.monotonic() < deadline
                time.sleep(0.1)
        doc = health(dsn, max_xact_age="1 second")
        [problem] = problems(doc, "xact_holds_vacuum")
        assert (problem["pid"], problem["application_name"], problem["state"]) == (
            pid, "forgotten-report", "idle in transaction")
        assert problem["age_s"] >= 1
        assert f"pid {pid}, application_name 'forgotten-report', state idle in transaction" in (
            problem["reason"])
        assert doc["oldest_xact"]["pid"] == pid
        assert problem["reason"] in doc["reasons"] and doc["status"] == "degraded"


def test_dead_rows_are_named_with_the_last_autovacuum(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        # autovacuum kept off this table, so that the dead rows stay until health() looks
        conn.execute("alter table pgclaim.records set (autovacuum_enabled = false)")
        conn.execute("select pgclaim.create_queue('dr')")
        conn.execute("select pgclaim.enqueue_batch('dr', array_fill('{}'::jsonb, array[10000]))")
        conn.execute("select pgclaim.enqueue_batch('dr', array_fill('{}'::jsonb, array[2000]))")
        assert conn.execute("select pgclaim.cancel(queue => 'dr')").fetchone() == (12000,)
        conn.execute("select pg_stat_force_next_flush()")
        deadline = time.monotonic() + 60
        while True:
            conn.execute("select pg_stat_clear_snapshot()")
            dead = conn.execute("select n_dead_tup from pg_stat_user_tables"
                                " where relid = 'pgclaim.records'::regclass").fetchone()
            if dead is not None and dead[0] >= 12000:
                break
            assert time.monotonic() < deadline, f"the statistics never showed them: {dead}"
            conn.execute("select pg_stat_force_next_flush()")
            time.sleep(0.1)
    doc = health(dsn, max_xact_age="1 hour")
    [problem] = problems(doc, "dead_rows")
    assert (problem["table"], problem["dead"], problem["last_autovacuum"]) == (
        "pgclaim.records", 12000, None)
    assert "last autovacuum never" in problem["reason"]
    assert doc["tables"]["records"]["dead"] == 12000


def test_dead_worker_holding_records_and_leases_nobody_takes_back(dsn: str) -> None:
    """A worker process claims records and is killed; two minutes later (the clock moved) it
    is named with what it holds, and its expired leases that nobody took back."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("select pgclaim.create_queue('dw')")
        conn.execute("select pgclaim.enqueue_batch('dw', array['{}', '{}', '{}']::jsonb[])")
        worker = subprocess.Popen([sys.executable, "-c", (
            "import sys, psycopg\n"
            "c = psycopg.connect(sys.argv[1], autocommit=True)\n"
            "c.execute(\"select pgclaim.register_worker('doomed')\")\n"
            "c.execute(\"select pgclaim.claim_batch('dw', 'doomed', 2, lease => '10 seconds')\")\n"
            "print('claimed', flush=True)\n"
            "sys.stdin.readline()\n"), dsn], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            text=True)
        try:
            assert worker.stdout is not None
            assert worker.stdout.readline().strip() == "claimed"
        finally:
            worker.kill()
            worker.wait()
        # Nobody claims from the queue (a claim would take the expired leases back).
        freeze_clock(conn, conn.execute("select now() + interval '2 minutes'").fetchone()[0])
    doc = health(dsn, max_xact_age="1 hour", max_pending_age="1 day")
    [holding] = problems(doc, "dead_worker_holding")
    assert (holding["worker_id"], holding["held"], holding["queues"]) == ("doomed", 2, {"dw": 2})
    assert holding["silent_s"] >= 119
    [leases] = problems(doc, "leases_not_reclaimed")
    assert (leases["queue"], leases["expired"]) == ("dw", 2)
    assert leases["oldest_expired_s"] >= 100
    assert problems(doc, "dead_workers")[0]["dead"] == 1
    with psycopg.connect(dsn, autocommit=True) as conn:
        assert conn.execute("select pgclaim.reclaim_orphans()").fetchone() == (2,)
    doc = health(dsn, max_xact_age="1 hour", max_pending_age="1 day")
    assert not problems(doc, "dead_worker_holding") and not problems(doc, "leases_not_reclaimed")


def test_paused_queue_with_due_records(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("select pgclaim.create_queue('pz')")
        conn.execute("select pgclaim.pause_queue('pz')")
        assert not problems(health(dsn, max_xact_age="1 hour"), "paused_with_pending")
        conn.execute("select pgclaim.enqueue('pz', '{}')")
    [problem] = problems(health(dsn, max_xact_age="1 hour"), "paused_with_pending")
    assert (problem["queue"], problem["pending"]) == ("pz", 1)
    assert "pgclaim.resume_queue('pz')" in problem["reason"]


def test_backlog_growing_faster_than_it_drains(dsn: str) -> None:
    """Two queues get 100 records each; one is drained, the other barely: two minutes later
    (the clock moved) only the second is growing."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        for queue in ("drained", "swamped"):
            conn.execute("select pgclaim.create_queue(%s)", [queue])
            conn.execute("select pgclaim.enqueue_batch(%s, array_fill('{}'::jsonb, array[100]))",
                         [queue])
        conn.execute("select pgclaim.complete('w', array(select id from"
                     " pgclaim.claim_batch('drained', 'w', 100)))")
        conn.execute("select pgclaim.complete('w', array(select id from"
                     " pgclaim.claim_batch('swamped', 'w', 5)))")
        freeze_clock(conn, conn.execute("select now() + interval '2 minutes'").fetchone()[0])
    doc = health(dsn, max_xact_age="1 hour", max_pending_age="10 minutes")
    [problem] = problems(doc, "backlog_growing")
    assert (problem["queue"], problem["arrived"], problem["finished"], problem["pending"]) == (
        "swamped", 100, 5, 95)
    assert doc["queues"]["drained"]["finished_last_5m"] == 100
    assert doc["queues"]["swamped"]["arrived_last_5m"] == 100
