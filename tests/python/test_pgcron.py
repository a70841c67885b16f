"""What pg_cron runs inside the database, as the docs show it, in a cluster of the test's
own with pg_cron preloaded (``pgcron``), with no process of pgclaim's running: the
maintenance jobs of docs/operations.md take back orphaned records and purge finished ones
past retention; the outbox consumer of docs/sql.md (``pgclaim.run``) delivers each event
exactly once and dead-letters the one it cannot. The blocks are read from the docs, so that
what they show is what runs; only their schedules are made the most frequent pg_cron takes
(every minute before pg_cron 1.5: a test then waits for the next minute boundary)."""
from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from pgcron import CRON_DB, CronCluster, cron_cluster, pg_cron_missing
from pgdb import ROOT

DOCS = (ROOT / "docs" / "operations.md").read_text()
SQL_DOCS = (ROOT / "docs" / "sql.md").read_text()
JOBS = ["pgclaim-reclaim", "pgclaim-purge"]


def documented_jobs() -> str:
    """The SQL block of docs/operations.md that schedules pgclaim's maintenance."""
    match = re.search(r"```sql\n(-- pg_cron jobs for pgclaim.*?)```", DOCS, re.DOTALL)
    assert match, "docs/operations.md shows the pg_cron jobs in a ```sql block"
    return match.group(1)


@pytest.fixture(scope="module")
def cron() -> Iterator[CronCluster]:
    missing = pg_cron_missing()
    if missing:
        pytest.skip(missing)
    with cron_cluster() as cc:
        yield cc


def wait_until_db_time_passes(conn: psycopg.Connection[Any], sql: str) -> None:
    """Waits until the database's clock is past the timestamp ``sql`` returns."""
    deadline = time.monotonic() + 30
    while conn.execute(f"select clock_timestamp() > ({sql})").fetchone() != (True,):
        assert time.monotonic() < deadline, f"the database clock never passed {sql}"
        time.sleep(0.1)


def test_scheduled_jobs_reclaim_orphans_and_purge(cron: CronCluster) -> None:
    with psycopg.connect(cron.url, autocommit=True) as conn:
        # the automatic purge of reclaim_orphans is off: the purge job must do it
        conn.execute("select pgclaim.configure(purge_limit => 0)")
        conn.execute("select pgclaim.create_queue('cron_q', retention => '1 second')")
        conn.execute("select pgclaim.create_queue('cron_keep', retention => '30 days')")
        ids = [r[0] for r in conn.execute(
            "select pgclaim.enqueue_batch('cron_q', array['{\"n\": 1}', '{\"n\": 2}',"
            " '{\"n\": 3}']::jsonb[])").fetchall()]
        kept = conn.execute("select pgclaim.enqueue('cron_keep', '{}')").fetchone()
        assert kept is not None
        conn.execute("select pgclaim.complete('w-keep', array(select id from"
                     " pgclaim.claim_batch('cron_keep', 'w-keep', 1)))")
        # a worker that claims two records for 1 second and vanishes, and one completion
        claimed = conn.execute("select id, lease_token from pgclaim.claim_batch('cron_q',"
                               " 'w-gone', 3, lease => '1 second') order by id").fetchall()
        assert [r[0] for r in claimed] == ids
        assert conn.execute("select pgclaim.complete('w-gone', %s, %s)",
                            [ids[:1], [claimed[0][1]]]).fetchone() == (1,)
        wait_until_db_time_passes(conn, "select max(lease_until) from pgclaim.records")
        wait_until_db_time_passes(
            conn, "select max(finished_at) + interval '1 second' from pgclaim.finished"
                  " where queue = 'cron_q'")

        block = documented_jobs()
        block = re.sub(r"(cron\.schedule_in_database\(\s*'[^']+',\s*)'[^']+'",
                       lambda m: f"{m.group(1)}'{cron.fast_schedule}'", block)
        block = block.replace("database => 'app'", f"database => '{CRON_DB}'")
        conn.execute(block)
        assert conn.execute("select count(*) from cron.job where jobname = any(%s)",
                            [JOBS]).fetchone() == (2,)
        try:
            assert cron.wait_for_runs(conn, JOBS) == dict.fromkeys(JOBS, "succeeded")
        finally:
            # by id: unschedule by name finds only the caller's own jobs
            conn.execute("select cron.unschedule(jobid) from cron.job"
                         " where jobname = any(%s)", [JOBS])

        rows = conn.execute("select id, status::text, attempt, worker_id from pgclaim.records"
                            " order by id").fetchall()
        assert rows == [(ids[1], "pending", 1, None), (ids[2], "pending", 1, None)], (
            "the orphans were taken back")
        assert conn.execute("select queue, id from pgclaim.finished").fetchall() == [
            ("cron_keep", kept[0])], "the expired record was purged, the recent one kept"
        # the jobs ran as the login the docs make, a member of pgclaim_admin
        assert conn.execute("select distinct username, database from cron.job_run_details"
                            ).fetchall() == [("pgclaim_maintenance", CRON_DB)]


def sql_block(docs: str, starts: str) -> str:
    """The ```sql block of ``docs`` whose text starts with ``starts``."""
    match = re.search(r"```sql\n(" + re.escape(starts) + r".*?)```", docs, re.DOTALL)
    assert match, f"the docs show a ```sql block starting {starts!r}"
    return match.group(1)


def test_outbox_consumer_run_by_pg_cron(cron: CronCluster) -> None:
    """docs/sql.md's outbox fan-out: events enqueued by the application, delivered to every
    subscriber's inbox by ``pgclaim.run`` in a pg_cron job, as a login with pgclaim_worker
    and the handler's rights only. Each event lands once per subscriber and is completed in
    the same transaction; the event no subscriber takes fails its only attempt with the
    handler's error, and its partial effects are rolled back."""
    example = sql_block(SQL_DOCS, "create procedure app.fan_out")
    procedure = example[:example.index("$$;") + 3]  # then the example's calls, made below
    job = sql_block(SQL_DOCS, "-- the outbox consumer")
    job = re.sub(r"('outbox-fan-out',\s*)'[^']+'", lambda m: f"{m.group(1)}'{cron.fast_schedule}'",
                 job)
    job = job.replace("database => 'app'", f"database => '{CRON_DB}'")
    with psycopg.connect(cron.url, autocommit=True) as conn:
        conn.execute("create schema app")
        conn.execute("create table app.subscriptions (subscriber text, topic text)")
        conn.execute("create table app.inbox (subscriber text, event_id bigint, body jsonb,"
                     " unique (subscriber, event_id))")
        conn.execute("insert into app.subscriptions values ('billing', 'orders'),"
                     " ('shipping', 'orders'), ('audit', 'users')")
        conn.execute(procedure)
        conn.execute("select pgclaim.create_queue('outbox', max_attempts => 1)")
        events = [conn.execute("select pgclaim.enqueue(queue => 'outbox', payload => %s)",
                               [psycopg.types.json.Jsonb(body)]).fetchone()[0]  # type: ignore[index]
                  for body in ({"topic": "orders", "order": 1}, {"topic": "users", "user": 2},
                               {"topic": "orders", "order": 3}, {"topic": "nobody"})]
        conn.execute(job)
        try:
            assert cron.wait_for_runs(conn, ["outbox-fan-out"]) == {
                "outbox-fan-out": "succeeded"}
        finally:
            conn.execute("select cron.unschedule(jobid) from cron.job"
                         " where jobname = 'outbox-fan-out'")
        assert conn.execute("select subscriber, event_id from app.inbox order by 2, 1"
                            ).fetchall() == [
            ("billing", events[0]), ("shipping", events[0]), ("audit", events[1]),
            ("billing", events[2]), ("shipping", events[2])]
        rows = conn.execute("select id, status::text, last_error from pgclaim.finished"
                            " where queue = 'outbox' order by id").fetchall()
        assert [(i, s) for i, s, _ in rows] == [
            (events[0], "completed"), (events[1], "completed"), (events[2], "completed"),
            (events[3], "failed")]
        assert "no subscriber for topic nobody" in rows[3][2]
        assert conn.execute("select distinct username from cron.job_run_details"
                            " where command like '%%pgclaim.run(%%'").fetchall() == [
            ("outbox_consumer",)]
