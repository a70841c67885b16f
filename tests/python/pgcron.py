"""A private cluster with pg_cron loaded, for tests of what pg_cron runs inside the database:
scheduled maintenance (``reclaim_orphans``, ``purge``) and in-database consumers (``run``).

pg_cron must be in ``shared_preload_libraries``, which the shared test cluster does not
have: each ``CronCluster`` starts a throwaway cluster of its own (``PrivateCluster``) with
pg_cron preloaded and ``cron.database_name`` naming a database it loads pgclaim into, and
stops and deletes it on ``close()``. Jobs run in background workers
(``cron.use_background_workers``), so they need no password or socket setup.

pg_cron schedules at minute granularity before 1.5 (Debian 12 ships 1.4): a job scheduled
``* * * * *`` first runs at the next minute boundary, so a test waits up to a minute for it.
From 1.5 on, ``fast_schedule`` is ``'1 seconds'``.
"""
from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from pgcluster import PrivateCluster, bindir, load_pgclaim

CRON_DB = "pgclaim_cron"


def pg_cron_missing() -> str | None:
    """``None`` when pg_cron can be loaded here, else what is missing."""
    share = Path(str(bindir()).replace("/lib/", "/share/")).parent / "extension"
    if not (share / "pg_cron.control").exists():
        return ("pg_cron is not installed (apt-get install postgresql-15-cron, which"
                " scripts/deps.sh does when run as root)")
    return None


def version_tuple(text: str) -> tuple[int, ...]:
    """``'1.4-1'`` -> ``(1, 4, 1)``."""
    return tuple(int(p) for p in text.replace("-", ".").split(".") if p.isdigit())


class CronCluster:
    """A private cluster with pg_cron, and database ``CRON_DB`` with pgclaim and pg_cron."""

    def __init__(self) -> None:
        self.cluster = PrivateCluster(extra_conf=(
            "shared_preload_libraries = 'pg_cron'\n"
            f"cron.database_name = '{CRON_DB}'\n"
            "cron.use_background_workers = on\n"
            "max_worker_processes = 20\n"
            "cron.timezone = 'UTC'\n"))
        try:
            self.url = load_pgclaim(self.cluster.url, CRON_DB)
            with psycopg.connect(self.url, autocommit=True) as conn:
                conn.execute("create extension pg_cron")
                row = conn.execute("select extversion from pg_catalog.pg_extension"
                                   " where extname = 'pg_cron'").fetchone()
            assert row is not None
            self.version: str = row[0]
        except BaseException:
            self.cluster.close()
            raise

    @property
    def seconds(self) -> bool:
        """True when this pg_cron takes schedules in seconds (1.5 and later)."""
        return version_tuple(self.version) >= (1, 5)

    @property
    def fast_schedule(self) -> str:
        """The most frequent schedule this pg_cron takes: every second, or every minute."""
        return "1 seconds" if self.seconds else "* * * * *"

    def wait_for_runs(self, conn: psycopg.Connection[Any], jobs: list[str],
                      timeout: float = 150.0) -> dict[str, str]:
        """Waits until each job named has finished a run since it was scheduled; returns
        its last status (``succeeded``) by name. A failed run raises with its message."""
        deadline = time.monotonic() + timeout
        while True:
            rows = conn.execute(
                "select j.jobname, d.status, d.return_message from cron.job as j"
                " join cron.job_run_details as d on d.jobid = j.jobid"
                " where j.jobname = any(%s) and d.status in ('succeeded', 'failed')"
                " order by d.end_time", [jobs]).fetchall()
            done = {name: status for name, status, _ in rows}
            failed = [(name, msg) for name, status, msg in rows if status == "failed"]
            if failed:
                raise AssertionError(f"pg_cron job failed: {failed}")
            if set(done) >= set(jobs):
                return done
            if time.monotonic() > deadline:
                raise AssertionError(f"pg_cron ran {sorted(done)} of {jobs} in {timeout} s"
                                     f" (server log: {self.cluster.base / 'server.log'})")
            time.sleep(0.2)

    def close(self) -> None:
        """Stops the cluster and deletes its files."""
        self.cluster.close()


@contextmanager
def cron_cluster() -> Iterator[CronCluster]:
    """A ``CronCluster`` for the duration of the block."""
    cc = CronCluster()
    try:
        yield cc
    finally:
        cc.close()
