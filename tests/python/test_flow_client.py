"""The client's flow-control surface: queue settings, FIFO groups, per-item batches, dedup
windows and the next eligible time, each one SQL call."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from pgdb import freeze_clock

from pgclaim import Item, QueueClient
from pgclaim.cli import format_stats

T0 = datetime(2030, 1, 1, tzinfo=UTC)
PAST = datetime(2020, 1, 1, tzinfo=UTC)


def test_flow_settings_round_trip(dsn: str, conn: psycopg.Connection[Any]) -> None:
    with QueueClient(dsn) as client:
        client.create_queue("fc", max_running=2, rate=1.5, fair=True,
                            dedup_window=timedelta(minutes=5))
        row = conn.execute("select max_running, rate, burst, fair, dedup_window"
                           " from pgclaim.queues where queue = 'fc'").fetchone()
        assert row == (2, 1.5, 2, True, timedelta(minutes=5))
        client.alter_queue("fc", max_running=0, rate=0, dedup_window=0)
        row = conn.execute("select max_running, rate, burst, dedup_window"
                           " from pgclaim.queues where queue = 'fc'").fetchone()
        assert row == (None, None, None, None)


def test_group_key_and_items(dsn: str, conn: psycopg.Connection[Any]) -> None:
    with QueueClient(dsn) as client:
        client.create_queue("fg", dedup_window=timedelta(hours=1))
        head = client.enqueue("fg", {"n": 1}, group_key="g")
        items: list[Item] = [
            {"payload": {"n": 2}, "group_key": "g"},
            {"payload": {"n": 3}, "priority": 4, "run_at": PAST, "max_attempts": 2},
            {"payload": {"n": 4}, "dedup_key": "k"},
            {"payload": {"n": 5}, "dedup_key": "k"},
        ]
        got = client.enqueue_items("fg", items)
        assert [created for _, created in got] == [True, True, True, False]
        assert got[3][0] == got[2][0]
        # the second record of group g waits behind its head: blocked, not pending
        [stats] = client.stats()
        assert (stats.pending, stats.blocked) == (3, 1)
        header, row = format_stats([stats]).splitlines()
        assert header.split()[-1] == "blocked" and row.split()[-1] == "1"
        batch = client.claim("fg", "w1", 10)
        # the second record of group g waits behind its head
        assert {r.id for r in batch} == {head, got[1][0], got[2][0]}
        assert client.complete("w1", batch) == 3
        # within the window a finished record's key is still taken
        assert client.enqueue_items("fg", [{"payload": {}, "dedup_key": "k"}]) == [
            (got[2][0], False)]
        assert [r.id for r in client.claim("fg", "w1", 10)] == [got[0][0]]


def test_next_eligible(dsn: str, conn: psycopg.Connection[Any]) -> None:
    freeze_clock(conn, T0)
    with QueueClient(dsn) as client:
        client.create_queue("fn", rate=2, burst=1)
        assert client.next_eligible("fn") is None
        client.enqueue("fn", {})
        client.enqueue("fn", {})
        assert client.next_eligible("fn") == T0
        assert len(client.claim("fn", "w1", 10)) == 1
        assert client.next_eligible("fn") == T0 + timedelta(seconds=0.5)
