"""Maintenance scheduled with pg_cron, as docs/operations.md shows it: the jobs of its
pg_cron block run in a cluster of the test's own with pg_cron preloaded (``pgcron``),
take back orphaned records and purge finished ones past retention, with no process of
pgclaim's running. The block is read from the docs, so that what they show is what runs;
only its schedules are made the most frequent pg_cron takes (every minute before pg_cron
1.5: the test then waits for the next minute boundary)."""
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
