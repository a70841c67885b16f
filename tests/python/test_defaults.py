"""Defaults written once: queue settings in SQL, worker settings in ``Worker``, the batch
limit in one constant; each copy elsewhere is read from its source or checked against it."""
from __future__ import annotations

import inspect
import re
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from pgdb import ROOT
from psycopg import sql

import pgclaim
from pgclaim import _sql, cli
from pgclaim.client import MAX_BATCH_SIZE

SETTINGS_ROW = ("select " + ", ".join(_sql.QUEUE_SETTINGS)
                + " from pgclaim.queues where queue = %s")


def catalog_settings(conn: psycopg.Connection[Any], function: str) -> dict[str, str]:
    """The parameters of ``pgclaim.<function>`` after ``queue``, with their types."""
    row = conn.execute(
        "select p.proargnames, array(select format_type(t, null) from unnest(p.proargtypes) t)"
        " from pg_proc p join pg_namespace n on n.oid = p.pronamespace"
        " where n.nspname = 'pgclaim' and p.proname = %s", [function]).fetchall()
    assert len(row) == 1, f"pgclaim.{function} is overloaded"
    names, types = row[0]
    assert names[0] == "queue"
    return dict(zip(names[1:], types[1:], strict=True))


def keyword_parameters(fn: Any) -> list[str]:
    return [name for name, p in inspect.signature(fn).parameters.items()
            if p.kind is inspect.Parameter.KEYWORD_ONLY]


@pytest.mark.parametrize("function", ["create_queue", "alter_queue"])
def test_client_takes_exactly_the_sql_settings(conn: psycopg.Connection[Any],
                                               function: str) -> None:
    catalog = catalog_settings(conn, function)
    assert catalog == _sql.QUEUE_SETTINGS  # names, order and types
    method = getattr(pgclaim.QueueClient, function)
    assert keyword_parameters(method) == list(catalog)
    for name in catalog:  # None: let the SQL decide
        assert inspect.signature(method).parameters[name].default is None


def test_cli_create_queue_takes_exactly_the_settings() -> None:
    parser = cli.build_parser()
    args = parser.parse_args(["create-queue", "-q", "q", "--lease", "1m", "--max-attempts", "2",
                              "--backoff-base", "1s", "--backoff-max", "2m",
                              "--retention", "3d", "--max-payload-bytes", "4096",
                              "--max-lease", "1h", "--min-priority", "-5",
                              "--max-priority", "5", "--max-batch", "50",
                              "--max-running", "3", "--rate", "2.5", "--burst", "4",
                              "--fair", "yes", "--dedup-window", "10m"])
    assert {name: getattr(args, name) for name in _sql.QUEUE_SETTINGS} == {
        "lease": timedelta(minutes=1), "max_attempts": 2, "backoff_base": timedelta(seconds=1),
        "backoff_max": timedelta(minutes=2), "retention": timedelta(days=3),
        "max_payload_bytes": 4096, "max_lease": timedelta(hours=1), "min_priority": -5,
        "max_priority": 5, "max_batch": 50, "max_running": 3, "rate": 2.5, "burst": 4,
        "fair": True, "dedup_window": timedelta(minutes=10)}
    bare = parser.parse_args(["create-queue", "q"])
    assert all(getattr(bare, name) is None for name in _sql.QUEUE_SETTINGS)


def test_unset_settings_take_the_sql_defaults(dsn: str, conn: psycopg.Connection[Any]) -> None:
    conn.execute("select pgclaim.create_queue(queue => 'by_sql')")
    by_sql = conn.execute(SETTINGS_ROW, ["by_sql"]).fetchone()
    with pgclaim.QueueClient(dsn) as client:
        client.create_queue("by_client")
        assert conn.execute(SETTINGS_ROW, ["by_client"]).fetchone() == by_sql
        client.create_queue("some", max_attempts=9, retention=60)
        some = conn.execute(SETTINGS_ROW, ["some"]).fetchone()
        assert some is not None and by_sql is not None
        assert some == (by_sql[0], 9, by_sql[2], by_sql[3], timedelta(minutes=1), *by_sql[5:])
        client.alter_queue("some", lease=timedelta(seconds=45), max_batch=7)
        assert conn.execute(SETTINGS_ROW, ["some"]).fetchone() == (
            timedelta(seconds=45), 9, by_sql[2], by_sql[3], timedelta(minutes=1),
            *by_sql[5:9], 7, *by_sql[10:])
        client.alter_queue("some")  # nothing given: nothing changes
        assert conn.execute(SETTINGS_ROW, ["some"]).fetchone()[0] == timedelta(seconds=45)


def test_docs_state_the_sql_defaults(conn: psycopg.Connection[Any]) -> None:
    """docs/sql.md repeats the defaults for readers: it must say what the SQL does."""
    text = (ROOT / "docs" / "sql.md").read_text()
    match = re.search(r"`create_queue\(queue, ([^`]*)\)`", text)
    assert match, "docs/sql.md has no create_queue signature"
    documented = dict(part.split(" = ", 1) for part in match.group(1).split(", "))
    assert list(documented) == list(_sql.QUEUE_SETTINGS)
    conn.execute("select pgclaim.create_queue(queue => 'd')")
    actual = conn.execute(SETTINGS_ROW, ["d"]).fetchone()
    assert actual is not None
    for (name, kind), value in zip(_sql.QUEUE_SETTINGS.items(), actual, strict=True):
        if documented[name] == "null":
            assert value is None, f"docs/sql.md: {name} = null, SQL: {value}"
            continue
        stated = conn.execute(sql.SQL("select %s::text::{}").format(sql.SQL(kind)),
                              [documented[name].strip("'")]).fetchone()
        assert stated == (value,), f"docs/sql.md: {name} = {documented[name]}, SQL: {value}"


def test_setting_names_never_come_from_the_caller() -> None:
    with pytest.raises(ValueError, match="not a queue setting"):
        _sql.create_queue(["lease", "lease => null); drop table x; --"])
    composed = _sql.alter_queue(["retention", "lease"])
    text = composed.as_string(None)
    assert text == ('select pgclaim."alter_queue"(queue => %(queue)s, "lease" => %(lease)s, '
                    '"retention" => %(retention)s)')


def test_batch_limit_is_the_sql_limit(dsn: str) -> None:
    with pgclaim.QueueClient(dsn) as client:
        client.create_queue("q")
        assert client.claim("q", "w", MAX_BATCH_SIZE) == []
        with pytest.raises(pgclaim.InvalidArgument) as info:
            client.claim("q", "w", MAX_BATCH_SIZE + 1)
        assert info.value.sqlstate == "22023"
        pgclaim.Worker(client, "q", print, batch_size=MAX_BATCH_SIZE)
        with pytest.raises(ValueError, match=str(MAX_BATCH_SIZE)):
            pgclaim.Worker(client, "q", print, batch_size=MAX_BATCH_SIZE + 1)


def test_cli_defaults_are_the_api_defaults() -> None:
    parser = cli.build_parser()
    worker = parser.parse_args(["worker", "m:f", "-q", "q"])
    params = inspect.signature(pgclaim.Worker).parameters
    for name in ("concurrency", "batch_size", "lease", "heartbeat_every", "poll_interval",
                 "reclaim_every", "grace", "log_payloads"):
        assert getattr(worker, name) == params[name].default, name
    health = parser.parse_args(["health"])
    params = inspect.signature(pgclaim.QueueClient.health).parameters
    assert health.max_xact_age == params["max_xact_age"].default
    assert health.max_pending_age == params["max_pending_age"].default
    reclaim = parser.parse_args(["reclaim"])
    params = inspect.signature(pgclaim.QueueClient.reclaim_orphans).parameters
    assert reclaim.max_records == params["max_records"].default
    enqueue = parser.parse_args(["enqueue", "q"])
    assert enqueue.priority == inspect.signature(
        pgclaim.QueueClient.enqueue).parameters["priority"].default
