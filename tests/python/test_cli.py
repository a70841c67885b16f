"""The pgclaim command, as a subprocess and in process."""
from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from pgdb import ROOT, create_database, db_url, drop_database

import pgclaim
from pgclaim import cli
from pgclaim._version import required_schema_version

HERE = Path(__file__).resolve().parent
PGCLAIM = str(Path(sys.executable).with_name("pgclaim"))
NOWHERE = "postgresql://postgres@127.0.0.1:1/none"


def run(*args: str, stdin: str | None = None, env: dict[str, str] | None = None,
        ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PGCLAIM, *args], input=stdin, capture_output=True, text=True, check=False,
                          timeout=60, env={**os.environ, **(env or {})})


@pytest.fixture(autouse=True)
def keep_logging() -> Iterator[None]:
    log = logging.getLogger("pgclaim")
    saved = (log.handlers[:], log.level, log.propagate)
    yield
    log.handlers[:], log.level, log.propagate = saved[0], saved[1], saved[2]


@pytest.fixture
def empty_db(cluster_url: str) -> Iterator[str]:
    name = create_database(cluster_url, "template1")
    try:
        yield db_url(cluster_url, name)
    finally:
        drop_database(cluster_url, name)


def test_migrate_doctor_and_stats_as_a_process(empty_db: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    doctor = run("--database", empty_db, "doctor")
    assert doctor.returncode == 2 and "pgclaim is not installed" in doctor.stdout
    first = run("migrate", "--database", empty_db)
    assert first.returncode == 0, first.stderr
    every = sorted(p.stem for p in (ROOT / "migrations").glob("[0-9]*.sql")
                   if not p.name.endswith(".rollback.sql"))
    assert f"applied {len(every)} migration(s): {', '.join(every)}" in first.stdout
    assert cli.main(["migrate", "--database", empty_db]) == 0
    assert "applied 0 migration(s)" in capsys.readouterr().out
    assert cli.main(["doctor", "--database", empty_db]) in (0, 1)
    doctor_out = capsys.readouterr().out
    assert f"schema version         {required_schema_version()}" in doctor_out
    assert "pgtap" in doctor_out
    assert run("create-queue", "-q", "jobs", "--lease", "30s",
               "--database", empty_db).returncode == 0
    lines = "\n".join(json.dumps({"n": i}) for i in range(2500)) + "\n\n"
    enq = run("enqueue", "--queue", "jobs", "--batch", "1000", "--database", empty_db,
              stdin=lines)
    assert enq.returncode == 0, enq.stderr
    assert "enqueued 2500 record(s) into jobs" in enq.stdout
    assert "enqueued 1000 record(s) ..." in enq.stderr  # progress
    stats = run("stats", "--database", empty_db)
    assert stats.stdout.splitlines()[0].split()[:3] == ["queue", "paused", "pending"]
    assert stats.stdout.splitlines()[1].split()[:3] == ["jobs", "no", "2500"]
    # (other databases of the cluster may hold long transactions: not ours to judge here)
    health = run("health", "--database", empty_db, "--max-xact-age", "1d")
    assert (health.returncode, health.stdout.strip()) == (0, "ok")


def test_worker_command_drains_a_queue(dsn: str, conn: psycopg.Connection[Any]) -> None:
    conn.execute("select pgclaim.create_queue('q')")
    conn.execute("select pgclaim.enqueue_batch('q', array['1','2','3']::jsonb[])")
    proc = run("worker", "workers_fixture.handlers:noop", "--queue", "q", "--until-empty",
               "--database", dsn, env={"PYTHONPATH": str(HERE)})
    assert proc.returncode == 0, proc.stderr
    assert "completed 3" in proc.stderr and "registered" in proc.stderr
    assert conn.execute("select count(*) from public.every_record where status = 'completed'"
                        ).fetchone() == (3,)


def test_health_exit_codes(dsn: str, conn: psycopg.Connection[Any],
                           capsys: pytest.CaptureFixture[str]) -> None:
    assert run("health", "--database", NOWHERE).returncode == 2
    assert cli.main(["--database", dsn, "health", "--max-xact-age", "1d"]) == 0
    conn.execute("insert into pgclaim.workers (worker_id, info, started_at, last_seen)"
                  " values ('gone', '{}', now() - interval '1 hour', now() - interval '1 hour')")
    capsys.readouterr()
    assert cli.main(["health", "--database", dsn, "--max-xact-age", "1d"]) == 1
    assert "degraded: 1 dead worker(s)" in capsys.readouterr().out
    assert cli.main(["health", "--json", "--database", dsn, "--max-xact-age", "1d"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["status"] == "degraded" and doc["workers"] == {"alive": 0, "dead": 1}
    assert cli.main(["health", "--json", "--database", NOWHERE]) == 2
    assert json.loads(capsys.readouterr().out)["reachable"] is False


def test_commands_in_process(dsn: str, conn: psycopg.Connection[Any],
                             capsys: pytest.CaptureFixture[str],
                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", dsn)
    assert cli.main(["create-queue", "q", "--max-attempts", "1", "--backoff-base", "1s",
                     "--backoff-max", "1m", "--retention", "1d", "--lease", "1m"]) == 0
    assert cli.main(["enqueue", "q", '{"a": 1}', "[2]", "--priority", "3"]) == 0
    ids = [int(x) for x in capsys.readouterr().out.split()[-2:]]
    assert cli.main(["enqueue", "q", '{"k": 1}', "--dedup-key", "k1"]) == 0
    assert cli.main(["enqueue", "q", '{"k": 2}', "--dedup-key", "k1", "--delay", "5m"]) == 0
    out = capsys.readouterr().out.split()
    assert out[0] == out[1]
    with pytest.raises(SystemExit):
        cli.main(["enqueue", "q", "1", "2", "--dedup-key", "k"])
    with pytest.raises(SystemExit):
        cli.main(["enqueue", "q", "{not json"])
    monkeypatch.setattr(sys, "stdin", __import__("io").StringIO("{bad\n"))
    with pytest.raises(SystemExit):
        cli.main(["enqueue", "q"])
    assert cli.main(["stats", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["queue"] == "q" and rows[0]["pending"] == 3
    with pgclaim.QueueClient(dsn) as c:
        claimed = c.claim("q", "w", 10)
        c.fail("w", claimed[0].id, "x")
        conn.execute("update pgclaim.records set lease_until = now() - interval '1s'"
                     " where status = 'running'")
    assert cli.main(["reclaim"]) == 0
    assert "took back 2 record(s)" in capsys.readouterr().out
    assert cli.main(["retry", "q", "--id", str(ids[0])]) == 0
    assert "1 failed record(s) of q are pending again" in capsys.readouterr().out
    assert cli.main(["worker", "workers_fixture.handlers:noop", "--queue", "q",
                     "--until-empty", "--poll-interval", "0.2"]) == 0
    assert cli.main(["purge", "q", "--older-than", "0s", "--chunk", "1"]) == 0
    captured = capsys.readouterr()
    assert "purged 3 finished record(s) of q" in captured.out
    assert "purged 2 record(s) ..." in captured.err
    assert cli.main(["stats"]) == 0
    assert "q" in capsys.readouterr().out
    assert cli.main(["retry", "nope"]) == 2
    assert "error [PC001]" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["--database", dsn, "--database", dsn, "stats"])


def test_every_command_names_its_queue_with_queue_option(
        dsn: str, conn: psycopg.Connection[Any], capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", dsn)
    assert cli.main(["create-queue", "-q", "a", "--max-attempts", "1"]) == 0
    assert cli.main(["create-queue", "--queue", "b"]) == 0
    assert cli.main(["create-queue", "c", "--queue", "c"]) == 0  # the same twice: fine
    assert [r[0] for r in conn.execute("select queue from pgclaim.queues order by 1")] == [
        "a", "b", "c"]
    capsys.readouterr()
    assert cli.main(["enqueue", "-q", "a", '{"n": 1}', "2"]) == 0
    assert cli.main(["enqueue", "a", "3"]) == 0                 # the positional alias
    assert cli.main(["enqueue", "--queue", "a", "a", "4"]) == 0  # alias and option agree
    assert len(capsys.readouterr().out.split()) == 4
    monkeypatch.setattr(sys, "stdin", __import__("io").StringIO('{"n": 5}\n'))
    assert cli.main(["enqueue", "-q", "b"]) == 0
    assert "enqueued 1 record(s) into b" in capsys.readouterr().out
    payloads = [r[0] for r in conn.execute(
        "select payload from public.every_record where queue = 'a' order by id")]
    assert payloads == [{"n": 1}, 2, 3, 4]
    with pgclaim.QueueClient(dsn) as client:
        for rec in client.claim("a", "w", 10):
            client.fail("w", rec, "x")
    assert cli.main(["retry", "--queue", "a"]) == 0
    assert "4 failed record(s) of a are pending again" in capsys.readouterr().out
    assert cli.main(["purge", "-q", "a", "--older-than", "0s"]) == 0
    assert cli.main(["purge", "a"]) == 0
    assert cli.main(["worker", "workers_fixture.handlers:noop", "-q", "a", "--until-empty",
                     "--poll-interval", "0.2"]) == 0
    assert "completed 4" in capsys.readouterr().err
    for argv in (["create-queue", "a", "--queue", "b"], ["retry", "a", "-q", "b"],
                 ["purge", "-q", "a", "b"], ["create-queue"], ["worker", "m:f"],
                 ["enqueue"]):
        with pytest.raises(SystemExit) as info:
            cli.main(argv)
        assert info.value.code == 2, argv
    err = capsys.readouterr().err
    assert "the queue is given twice, as --queue b and as a" in err
    assert "the queue is missing (--queue QUEUE)" in err
    with pytest.raises(SystemExit) as exit_info:  # with --queue, other words are payloads
        cli.main(["enqueue", "-q", "a", "b", "5"])
    assert "payload 1 is not JSON" in str(exit_info.value)
    assert "with --queue, every argument is a payload" in str(exit_info.value)


def test_version_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == cli.version_text()
    assert cli.version_text().startswith(f"pgclaim {pgclaim.__version__} (needs schema version ")
    for command in ("create-queue", "enqueue", "worker", "retry", "purge"):
        with pytest.raises(SystemExit):
            cli.main([command, "--help"])
        assert "-q QUEUE, --queue QUEUE" in capsys.readouterr().out, command


def test_enqueue_errors_do_not_repeat_payloads(dsn: str, conn: psycopg.Connection[Any],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", dsn)
    conn.execute("select pgclaim.create_queue('q')")
    with pytest.raises(SystemExit) as info:
        cli.main(["enqueue", "q", '{"ok": 1}', '{"card": "4111-1111", oops}'])
    assert "payload 2 is not JSON" in str(info.value) and "4111" not in str(info.value)


def test_multi_database_worker_and_helpers(dsn: str, cluster_url: str, template_db: str,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    other = db_url(cluster_url, create_database(cluster_url, template_db))
    try:
        for url in (dsn, other):
            with pgclaim.QueueClient(url) as c:
                c.create_queue("q")
                c.enqueue_many("q", [1, 2])
        assert cli.main(["worker", "workers_fixture.handlers:noop", "--queue", "q",
                         "--until-empty", "--database", dsn, "--database", other,
                         "--poll-interval", "0.2"]) == 0
        assert capsys.readouterr().err.count("completed 2") == 2
    finally:
        drop_database(cluster_url, other.rsplit("/", 1)[1])
    assert cli.parse_duration("500ms") == timedelta(milliseconds=500)
    assert cli.parse_duration("2h") == timedelta(hours=2)
    assert cli.parse_duration("7") == timedelta(seconds=7)
    with pytest.raises(Exception, match="not a duration"):
        cli.parse_duration("soon")
    for bad in ("nomodule", "workers_fixture.handlers:CREATE"):
        with pytest.raises(SystemExit):
            cli.load_handler(bad)
    assert cli.format_stats([]).endswith("(no queue)")
    assert cli._shown("postgresql://u:secret@h/db") == "postgresql://u:***@h/db"
    assert cli._shown("") == "(libpq environment)"
    assert cli.main(["doctor", "--database", NOWHERE]) == 2
    assert cli._advice("autovacuum", "off") is not None
    assert cli._advice("fsync", "off") is not None
    assert cli._advice("max_connections", "20") is not None
    assert cli._advice("synchronous_commit", "off") is not None
    assert cli._advice("synchronous_commit", "on") is None


def test_retry_by_error_pattern_and_age(dsn: str, conn: psycopg.Connection[Any],
                                        capsys: pytest.CaptureFixture[str]) -> None:
    with pgclaim.QueueClient(dsn) as c:
        c.create_queue("dl", max_attempts=1)
        c.enqueue_many("dl", [{}, {}, {}])
        a, b, old = c.claim("dl", "w", 3)
        c.fail("w", a.id, "KeyError: 'to'")
        c.fail("w", b.id, "timeout")
        c.fail("w", old.id, "KeyError: 'cc'")
    conn.execute("update pgclaim.finished set finished_at = now() - interval '2 hours'"
                 " where id = %s", [old.id])
    capsys.readouterr()
    assert cli.main(["retry", "--database", dsn, "--queue", "dl", "--error-like", "KeyError%",
                     "--since", "1h"]) == 0
    assert "1 failed record(s) of dl are pending again" in capsys.readouterr().out
    assert conn.execute("select id from pgclaim.records").fetchall() == [(a.id,)]
    assert cli.main(["retry", "--database", dsn, "-q", "dl", "--min-attempt", "2"]) == 0
    assert "0 failed record(s)" in capsys.readouterr().out


def test_worker_takes_one_listen_dsn_per_database(capsys: pytest.CaptureFixture[str]) -> None:
    args = cli.build_parser().parse_args(
        ["worker", "m:f", "-q", "q", "--transaction-pooling", "--listen-dsn", "host=a"])
    assert (args.listen_dsn, args.transaction_pooling) == (["host=a"], True)
    with pytest.raises(SystemExit) as info:
        cli.main(["worker", "m:f", "-q", "q", "--database", "host=a", "--database", "host=b",
                  "--listen-dsn", "host=c"])
    assert info.value.code == 2
    assert "--listen-dsn is given once per --database" in capsys.readouterr().err
    with pytest.raises(ValueError, match="one listen_dsn per database"):
        pgclaim.MultiWorker(["host=a", "host=b"], "q", print, listen_dsns=["host=c"])
