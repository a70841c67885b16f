"""Negative controls: the checkers of the concurrency tests catch real bugs.

Each test loads a deliberately broken copy of one pgclaim function (one edit of the real
file) into its own test database, runs the same storm or race as the real tests, and
asserts that the checker reports the violation. A checker that passed here would be blind.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from _storm import (
    LedgerReport,
    check_history,
    check_ledger,
    fill_queue,
    freeze_clock,
    install_history,
    install_ledger,
    mutant_claim_no_lock,
    mutant_complete_no_holder,
    mutant_reclaim_live_leases,
    run_storm,
)
from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import run_state_machine_as_test
from pgdb import create_database, db_url, drop_database
from test_concurrency_mixed import run_mixed
from test_model import PgclaimModel

pytestmark = pytest.mark.concurrent


def storm_report(dsn: str, broken_sql: str, processes: int, records: int, max_batch: int,
                 lease: str | None = None) -> tuple[LedgerReport, int]:
    """Loads ``broken_sql``, runs a storm, returns the ledger report and records claimed."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(broken_sql)
        install_ledger(conn)
        conn.execute("select pgclaim.create_queue('storm', lease => '10 minutes')")
        ids = fill_queue(conn, "storm", records)
        results = run_storm(dsn, "storm", processes, max_batch=max_batch, lease=lease)
        assert [e for r in results for e in r.errors] == []
        return check_ledger(conn, "storm", ids), sum(r.claimed for r in results)


def test_claim_without_skip_locked_is_caught_by_the_storm(dsn: str) -> None:
    """Without FOR UPDATE SKIP LOCKED (and so without the pending recheck), claimers that
    read the same snapshot hand out the same records: the ledger shows double claims."""
    report, claimed = storm_report(dsn, mutant_claim_no_lock(), 10, 4_000, 200)
    assert report.double_claims, "the storm checker missed double claims"
    assert claimed > 4_000


def test_sweep_of_live_leases_is_caught_by_the_storm(dsn: str) -> None:
    """A lease-expiry test that also takes back live leases lets claim_batch's sweep steal
    records from their holders: the ledger shows records claimed again under a live lease."""
    report, claimed = storm_report(dsn, mutant_reclaim_live_leases(), 10, 4_000, 100)
    assert report.double_claims, "the storm checker missed stolen leases"
    assert claimed > 4_000


def test_complete_without_holder_check_is_caught_by_the_history(dsn: str) -> None:
    """The race of test_races (a stale worker completes after its record was reclaimed and
    claimed again) against a complete without the holder check: the stale completion goes
    through and the history checker flags it."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(mutant_complete_no_holder())
        install_history(conn)
        freeze_clock(conn, "2030-01-01 00:00:00+00")
        conn.execute("select pgclaim.create_queue('q', lease => '30 seconds')")
        conn.execute("select pgclaim.enqueue('q', '{}')")
    with psycopg.connect(dsn, autocommit=True, application_name="w1") as w1, \
            psycopg.connect(dsn, autocommit=True, application_name="w2") as w2:
        (rid, _tok) = w1.execute(
            "select id, lease_token from pgclaim.claim_batch('q', 'w1', 1)").fetchone() or (0, 0)
        freeze_clock(w1, "2030-01-01 00:05:00+00")
        assert w2.execute("select pgclaim.reclaim_orphans()").fetchone() == (1,)
        assert w2.execute("select id from pgclaim.claim_batch('q', 'w2', 1)").fetchone() == (rid,)
        stale = w1.execute("select pgclaim.complete('w1', array[%s]::bigint[])", (rid,)).fetchone()
        assert stale == (1,), "the mutant lets the stale completion through"
        report = check_history(w1, frozenset({"w1", "w2"}))
    assert report.stale_reports, "the history checker missed a stale completion"


@pytest.mark.slow  # probabilistic: the forced race and the model above are the make test controls
def test_complete_without_holder_check_is_caught_by_the_mixed_run(
    cluster_url: str, template_db: str,
) -> None:
    """The mixed-operations run against a complete without the holder check: workers that
    stalled past their leases complete records that others hold or that went back to
    pending, and the history checker reports those stale completions."""
    # A stale completion needs a stalled worker to report without a lease token after its
    # record moved on: on a loaded machine one 5 s run may see none, so up to three runs,
    # each in a fresh database.
    stale: list[Any] = []
    for seed in (11, 12, 13):
        name = create_database(cluster_url, template_db)
        try:
            dsn = db_url(cluster_url, name)
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute(mutant_complete_no_holder())
            sh, conn = run_mixed(dsn, seconds=5.0, seed=seed)
            with conn:
                assert sh.errors == []
                report = check_history(
                    conn, frozenset({f"worker-{i}" for i in range(5)} | {"drainer"}))
            stale = list(report.stale_reports)
        finally:
            drop_database(cluster_url, name)
        if stale:
            break
    assert stale, "the history checker missed stale completions"


@pytest.mark.parametrize("broken", [mutant_complete_no_holder, mutant_reclaim_live_leases])
def test_broken_functions_are_caught_by_the_model(
    conn: psycopg.Connection[Any], broken: Callable[[], str],
) -> None:
    """The lifecycle model test against a broken complete (no holder check) or a broken
    lease expiry: some generated sequence disagrees with the model."""
    conn.execute(broken())
    PgclaimModel.conn = conn
    with pytest.raises(AssertionError):
        run_state_machine_as_test(PgclaimModel, settings=settings(
            max_examples=40, stateful_step_count=30, derandomize=True, database=None,
            deadline=None, suppress_health_check=[HealthCheck.too_slow],
            phases=[Phase.explicit, Phase.reuse, Phase.generate],
        ))
