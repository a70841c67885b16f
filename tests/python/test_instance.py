"""instance_id(): unique per process, visible in pg_stat_activity and worker_status."""
from __future__ import annotations

import multiprocessing
import os
import re
import subprocess
import sys
from typing import Any

import psycopg

import pgclaim
from pgclaim.instance import MAX_LENGTH, application_name


def _child_id(_: int) -> tuple[int, str]:
    return os.getpid(), pgclaim.instance_id()


def test_unique_across_a_thousand_processes() -> None:
    pgclaim.instance_id()  # computed in the parent before forking: children must not share it
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(8, maxtasksperchild=1) as pool:
        results = pool.map(_child_id, range(1000), chunksize=1)
    pids = {pid for pid, _ in results}
    ids = [i for _, i in results]
    assert len(pids) == 1000  # one process per task
    assert len(set(ids)) == 1000
    assert pgclaim.instance_id() not in ids


def test_separate_interpreters_and_format() -> None:
    code = "import pgclaim; print(pgclaim.instance_id())"
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
             for _ in range(6)]
    ids = [p.communicate()[0].strip() for p in procs]
    assert len(set(ids)) == 6
    for i in ids + [pgclaim.instance_id()]:
        host, pid, started, suffix = i.split(":")
        assert host and pid.isdigit() and re.fullmatch(r"[0-9a-f]+", started)
        assert re.fullmatch(r"[0-9a-f]{6}", suffix) and len(i) <= MAX_LENGTH
    assert pgclaim.instance_id() == pgclaim.instance_id()
    assert len(application_name("x" * 100).encode()) <= 63


def test_visible_in_the_database(dsn: str, conn: psycopg.Connection[Any]) -> None:
    with pgclaim.QueueClient(dsn) as client:
        client.create_queue("q")
        worker = pgclaim.Worker(client, "q", lambda rec: None)
        assert worker.worker_id == pgclaim.instance_id()
        client.register_worker(worker.worker_id, worker.info)
        apps = [r[0] for r in conn.execute(
            "select application_name from pg_stat_activity where datname = current_database()")]
        assert "pgclaim " + pgclaim.instance_id() in apps
        rows = conn.execute("select worker_id, info->>'queue' from pgclaim.worker_status")
        assert rows.fetchall() == [(pgclaim.instance_id(), "q")]
