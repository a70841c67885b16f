"""The schema version check: the version the client needs comes from the migrations it
ships; the client, the Worker and ``pgclaim doctor`` refuse an older schema."""
from __future__ import annotations

import logging
import pickle
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from pgdb import ROOT

import pgclaim
from pgclaim import cli
from pgclaim._version import newest_migration, package_version, required_schema_version

PGCLAIM = str(Path(sys.executable).with_name("pgclaim"))


def set_version(conn: psycopg.Connection[Any], version: int) -> None:
    """Replaces ``pgclaim.schema_version()`` (the test runs as a superuser)."""
    conn.execute(f"create or replace function pgclaim.schema_version() returns integer"
                 f" language sql as 'select {int(version)}'")


def mismatch_message(installed: int) -> str:
    return (f"pgclaim: the database has schema version {installed}, this client (pgclaim "
            f"{package_version()}) needs schema version {required_schema_version()} or "
            'later; run "pgclaim migrate"')


@pytest.fixture(autouse=True)
def keep_logging() -> Iterator[None]:
    log = logging.getLogger("pgclaim")
    saved = (log.handlers[:], log.level, log.propagate)
    yield
    log.handlers[:], log.level, log.propagate = saved[0], saved[1], saved[2]


@pytest.fixture
def stale(conn: psycopg.Connection[Any]) -> Iterator[psycopg.Connection[Any]]:
    """The fresh database with a queue, a record, and a schema reporting version 0."""
    conn.execute("select pgclaim.create_queue('q')")
    conn.execute("select pgclaim.enqueue('q', '1')")
    set_version(conn, 0)
    yield conn


def test_newest_migration_of_a_folder(tmp_path: Path) -> None:
    for name in ("0001_initial.sql", "0002_more.sql", "0003_more.rollback.sql",
                 "0010_notes.txt", "post-apply.sql", "12_short.sql"):
        (tmp_path / name).write_text("")
    assert newest_migration(tmp_path) == 2
    (tmp_path / "0003_more.sql").write_text("")
    assert newest_migration(tmp_path) == 3
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="no NNNN_name.sql migration"):
        newest_migration(empty)


def test_the_installed_version_is_the_newest_migration(dsn: str) -> None:
    shipped = newest_migration(ROOT / "migrations")
    assert required_schema_version() == shipped
    with pgclaim.QueueClient(dsn) as client:
        assert client.schema_version() == shipped  # a fresh install from sql/
        assert client.check_schema() == shipped


def test_client_refuses_an_older_schema(dsn: str, stale: psycopg.Connection[Any]) -> None:
    client = pgclaim.QueueClient(dsn)  # lazy: nothing checked yet
    with client:
        with pytest.raises(pgclaim.SchemaMismatch) as info:
            client.enqueue("q", {"n": 2})
        assert str(info.value) == mismatch_message(0)
        assert (info.value.installed, info.value.required) == (0, required_schema_version())
        assert isinstance(info.value, pgclaim.PgclaimError) and info.value.sqlstate is None
        # refused before the call ran, and again on the next call
        assert stale.execute("select count(*) from public.every_record").fetchone() == (1,)
        with pytest.raises(pgclaim.SchemaMismatch):
            client.stats()
        set_version(stale, required_schema_version())
        assert client.enqueue("q", {"n": 3}) > 0  # migrated meanwhile: accepted
    copy = pickle.loads(pickle.dumps(info.value))
    assert str(copy) == str(info.value) and copy.required == info.value.required
    set_version(stale, 0)
    # a client on the caller's connection checks too
    with psycopg.connect(dsn) as mine, pytest.raises(pgclaim.SchemaMismatch, match="version 0"):
        pgclaim.QueueClient(mine).enqueue("q", {})


def test_the_check_runs_once_and_can_be_turned_off(dsn: str,
                                                   conn: psycopg.Connection[Any]) -> None:
    conn.execute("select pgclaim.create_queue('q')")
    with pgclaim.QueueClient(dsn) as client:
        assert client.stats()[0].queue == "q"  # first call: checked, passed
        set_version(conn, 0)
        assert client.stats()[0].queue == "q"  # not checked again
        with pytest.raises(pgclaim.SchemaMismatch):
            client.check_schema()  # an explicit check always looks
    with pgclaim.QueueClient(dsn, check_schema=False) as unchecked:
        assert unchecked.enqueue("q", {}) > 0
        assert unchecked.schema_version() == 0


def test_a_newer_schema_is_accepted(dsn: str, conn: psycopg.Connection[Any],
                                    capsys: pytest.CaptureFixture[str]) -> None:
    conn.execute("select pgclaim.create_queue('q')")
    conn.execute("select pgclaim.enqueue('q', '1')")
    newer = required_schema_version() + 5
    set_version(conn, newer)
    with pgclaim.QueueClient(dsn) as client:
        assert client.check_schema() == newer
        stats = pgclaim.Worker(client, "q", lambda rec: None, poll_interval=0.2,
                               install_signals=False).run(until_empty=True)
        assert stats.completed == 1
    assert cli.main(["doctor", "--database", dsn]) in (0, 1)
    assert f"ok    schema version         {newer} (this client needs" in capsys.readouterr().out


def test_worker_refuses_an_older_schema(dsn: str, stale: psycopg.Connection[Any]) -> None:
    with pgclaim.QueueClient(dsn, check_schema=False) as client:
        worker = pgclaim.Worker(client, "q", lambda rec: None, install_signals=False)
        with pytest.raises(pgclaim.SchemaMismatch) as info:
            worker.run()
    assert str(info.value) == mismatch_message(0)
    assert stale.execute("select count(*) from pgclaim.workers").fetchone() == (0,)
    assert stale.execute("select status::text from public.every_record").fetchone() == ("pending",)


def test_doctor_and_commands_refuse_an_older_schema(dsn: str,
                                                    stale: psycopg.Connection[Any],
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["doctor", "--database", dsn]) == 2
    out = capsys.readouterr().out
    assert f"fail  schema version         {mismatch_message(0)}" in out
    assert cli.main(["stats", "--database", dsn]) == 2
    assert mismatch_message(0) in capsys.readouterr().err
    assert cli.main(["worker", "workers_fixture.handlers:noop", "--queue", "q",
                     "--database", dsn]) == 2
    assert mismatch_message(0) in capsys.readouterr().err
    set_version(stale, required_schema_version())
    assert cli.main(["doctor", "--database", dsn]) in (0, 1)
    assert "ok    schema version" in capsys.readouterr().out


def test_a_missing_schema_is_still_schema_missing(dsn: str,
                                                  conn: psycopg.Connection[Any]) -> None:
    conn.execute("drop function pgclaim.schema_version()")
    with pgclaim.QueueClient(dsn) as client, pytest.raises(pgclaim.SchemaMissing):
        client.stats()
    conn.execute("drop schema pgclaim cascade")
    with pgclaim.QueueClient(dsn) as client, pytest.raises(pgclaim.SchemaMissing):
        client.enqueue("q", {})


def test_version_option() -> None:
    proc = subprocess.run([PGCLAIM, "--version"], capture_output=True, text=True,
                          check=False, timeout=60)
    assert proc.returncode == 0
    assert proc.stdout.strip() == (f"pgclaim {pgclaim.__version__} (needs schema version "
                                   f"{required_schema_version()} or later)")
    with (ROOT / "pyproject.toml").open() as f:
        assert f'version = "{pgclaim.__version__}"\n' in f.read()
