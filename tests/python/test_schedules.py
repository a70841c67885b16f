"""Periodic schedules through the client and the CLI: schedule, schedules, tick, unschedule,
and ``pgclaim schedule add/list/remove``, on a frozen clock."""
from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from pgdb import freeze_clock

from pgclaim import InvalidArgument, QueueClient, QueueNotFound, Schedule, cli

T0 = datetime(2030, 1, 1, 0, 0, 30, tzinfo=UTC)


@pytest.fixture(autouse=True)
def keep_logging() -> Iterator[None]:
    """``cli.main`` sets up the pgclaim logger: later tests get it back as it was."""
    log = logging.getLogger("pgclaim")
    saved = (log.handlers[:], log.level, log.propagate)
    yield
    log.handlers[:], log.level, log.propagate = saved[0], saved[1], saved[2]


def test_schedule_tick_and_unschedule(dsn: str, conn: psycopg.Connection[Any]) -> None:
    freeze_clock(conn, T0)
    with QueueClient(dsn) as client:
        client.create_queue("sq")
        assert client.schedule("five", "sq", {"job": "r"}, cron="*/5 * * * *",
                               priority=3) == datetime(2030, 1, 1, 0, 5, tzinfo=UTC)
        assert client.schedule("half", "sq", every=30) == T0 + timedelta(seconds=30)
        rows = client.schedules()
        assert [r.name for r in rows] == ["five", "half"]
        assert isinstance(rows[0], Schedule)
        assert (rows[0].cron, rows[0].every, rows[0].timezone, rows[0].payload,
                rows[0].priority, rows[0].last_slot) == (
            "*/5 * * * *", None, "UTC", {"job": "r"}, 3, None)
        assert (rows[1].cron, rows[1].every, rows[1].payload) == (
            None, timedelta(seconds=30), {})
        assert client.tick() == 0
        freeze_clock(conn, T0 + timedelta(minutes=5))
        assert client.tick() == 2
        assert client.tick() == 0
        rows = client.schedules()
        assert rows[0].last_slot == datetime(2030, 1, 1, 0, 5, tzinfo=UTC)
        assert rows[0].next_slot == datetime(2030, 1, 1, 0, 10, tzinfo=UTC)
        assert rows[1].last_slot == T0 + timedelta(minutes=5)
        assert rows[0].last_id is not None
        claimed = client.claim("sq", "w1", 10)
        assert {r.id for r in claimed} == {rows[0].last_id, rows[1].last_id}
        assert client.unschedule("five") is True
        assert client.unschedule("five") is False
        assert [r.name for r in client.schedules()] == ["half"]


def test_schedule_refuses_bad_input(dsn: str, conn: psycopg.Connection[Any]) -> None:
    with QueueClient(dsn) as client:
        client.create_queue("sb")
        with pytest.raises(InvalidArgument, match="cron hour field"):
            client.schedule("x", "sb", cron="0 24 * * *")
        with pytest.raises(InvalidArgument, match="exactly one of cron and every"):
            client.schedule("x", "sb")
        with pytest.raises(QueueNotFound):
            client.schedule("x", "sb_missing", every=60)
        assert client.schedules() == []


def test_cli_schedule(dsn: str, conn: psycopg.Connection[Any],
                      capsys: pytest.CaptureFixture[str]) -> None:
    freeze_clock(conn, T0)
    with QueueClient(dsn) as client:
        client.create_queue("sc")
    assert cli.main(["schedule", "add", "nightly", "--queue", "sc", "--cron", "0 3 * * *",
                     "--payload", '{"job": "n"}', "--priority", "2",
                     "--database", dsn]) == 0
    assert "next slot 2030-01-01T03:00:00+00:00" in capsys.readouterr().out
    assert cli.main(["schedule", "add", "often", "-q", "sc", "--every", "30s",
                     "--database", dsn]) == 0
    capsys.readouterr()
    assert cli.main(["schedule", "list", "--database", dsn]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["name", "queue", "timing", "last", "slot", "next", "slot"]
    assert "cron 0 3 * * * (UTC)" in out[1] and "2030-01-01T03:00:00Z" in out[1]
    assert "every 30s" in out[2]
    assert cli.main(["schedule", "list", "--json", "--database", dsn]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [(d["name"], d["every"], d["payload"]) for d in doc] == [
        ("nightly", None, {"job": "n"}), ("often", 30.0, {})]
    assert cli.main(["schedule", "add", "bad", "--queue", "sc", "--cron", "* * *",
                     "--database", dsn]) == 2
    assert "[22023]" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["schedule", "add", "bad", "--queue", "sc", "--database", dsn])
    with pytest.raises(SystemExit):
        cli.main(["schedule", "add", "bad", "--queue", "sc", "--every", "1s",
                  "--payload", "{", "--database", dsn])
    assert cli.main(["schedule", "remove", "often", "--database", dsn]) == 0
    assert cli.main(["schedule", "remove", "often", "--database", dsn]) == 1
    capsys.readouterr()
    with QueueClient(dsn) as client:
        assert [s.name for s in client.schedules()] == ["nightly"]


def test_format_schedules_empty() -> None:
    assert cli.format_schedules([]).split() == ["name", "queue", "timing", "last", "slot",
                                                 "next", "slot"]
