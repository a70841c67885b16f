"""Claim storm: many OS processes drain one queue at once; a ledger written in each claim's
own transaction proves that no record is handed out twice, none is lost, none is left
unfinished, and every batch comes in (priority desc, run_at, id) order."""
from __future__ import annotations

import psycopg
import pytest
from _storm import check_ledger, fill_queue, install_ledger, run_storm

pytestmark = pytest.mark.concurrent


def storm(dsn: str, processes: int, records: int, priorities: tuple[int, ...] = (0,)) -> None:
    """Fills a queue, drains it with ``processes`` processes and checks the ledger."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        install_ledger(conn)
        conn.execute("select pgclaim.create_queue('storm', lease => '10 minutes')")
        ids = fill_queue(conn, "storm", records, priorities=priorities)
        conn.execute("analyze pgclaim.records")
        results = run_storm(dsn, "storm", processes, max_batch=min(2000, records))
        errors = [e for r in results for e in r.errors]
        assert errors == []
        assert sum(r.deadlocks for r in results) == 0, "completes of disjoint batches"
        assert len(results) == processes
        assert sum(r.claimed for r in results) == records
        assert sum(r.completed for r in results) == records
        assert [r.oversized for r in results if r.oversized] == []
        report = check_ledger(conn, "storm", ids)
        assert report.claims == records
        assert report.double_claims == []
        assert report.lost == []
        assert report.unfinished == []
        assert report.disorder == []
        assert report.unordered_ids == []
        # Every process took part: their first claims form one round (see run_storm).
        assert [r.worker_id for r in results if r.claimed == 0] == []


def test_storm_20_processes_20k_records(dsn: str) -> None:
    storm(dsn, processes=20, records=20_000)


def test_storm_mixed_priorities(dsn: str) -> None:
    storm(dsn, processes=8, records=6_000, priorities=(0, 5, -3, 5, 1))


@pytest.mark.slow
def test_storm_20_processes_100k_records(dsn: str) -> None:
    storm(dsn, processes=20, records=100_000)


def test_claim_batch_never_exceeds_batch_size(dsn: str) -> None:
    """20 processes claim small batches from a large queue at once: no call returns more
    than it asked for, and nothing is handed out twice."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        install_ledger(conn)
        conn.execute("select pgclaim.create_queue('bound', lease => '10 minutes')")
        ids = fill_queue(conn, "bound", 6_000)
        results = run_storm(dsn, "bound", 20, max_batch=50)
        assert [e for r in results for e in r.errors] == []
        assert [r.oversized for r in results if r.oversized] == []
        assert max(r.max_batch_seen for r in results) <= 50
        report = check_ledger(conn, "bound", ids)
        assert report.ok, report
