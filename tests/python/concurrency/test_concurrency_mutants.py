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
    CLAIM_WITH_LEDGER,
    LedgerReport,
    check_history,
    check_ledger,
    fill_queue,
    in_thread,
    install_history,
    install_ledger,
    mutant_claim_no_lock,
    mutant_complete_no_holder,
    mutant_reclaim_live_leases,
    run_storm,
    wait_blocked,
)
from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import run_state_machine_as_test
from pgdb import freeze_clock
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


def ledger_claim(conn: psycopg.Connection[Any], worker: str, size: int) -> list[int]:
    """One claim of queue 'storm' that writes its ledger rows in the same statement."""
    rows = conn.execute(CLAIM_WITH_LEDGER, {"queue": "storm", "worker": worker, "size": size,
                                            "batch": 0, "lease": None}).fetchall()
    return [r[0] for r in rows]


def ledger_queue(conn: psycopg.Connection[Any], broken_sql: str, records: int) -> list[int]:
    """Loads ``broken_sql``, the ledger and a queue 'storm' of ``records`` due records."""
    conn.execute(broken_sql)
    install_ledger(conn)
    conn.execute("select pgclaim.create_queue('storm', lease => '10 minutes')")
    return fill_queue(conn, "storm", records)


def test_claim_without_skip_locked_is_caught_by_the_ledger(dsn: str) -> None:
    """Without FOR UPDATE SKIP LOCKED (and so without the pending recheck), a claim that
    read its candidates while another claim held them waits for that claim and then hands
    the same records out again. Forced: A claims in an open transaction, B's claim is seen
    waiting on A's rows, A commits. The ledger shows the double claims (the real claim
    skips A's rows and never waits: this test fails against it in wait_blocked)."""
    with psycopg.connect(dsn, autocommit=True, application_name="admin") as admin, \
            psycopg.connect(dsn, autocommit=True, application_name="storm-a") as a, \
            psycopg.connect(dsn, autocommit=True, application_name="storm-b") as b:
        ids = ledger_queue(admin, mutant_claim_no_lock(), 20)
        a.execute("begin")
        got_a = ledger_claim(a, "storm-a", 10)
        fut = in_thread(lambda: ledger_claim(b, "storm-b", 10))
        wait_blocked(admin, b.info.backend_pid, fut)
        a.execute("commit")
        got_b = fut.result(timeout=60)
        assert set(got_a) & set(got_b), "the mutant hands A's records to B"
        report = check_ledger(admin, "storm", ids)
    assert {r[0] for r in report.double_claims} == set(got_a) & set(got_b), \
        "the ledger checker missed double claims"


def test_sweep_of_live_leases_is_caught_by_the_ledger(dsn: str) -> None:
    """A lease-expiry test that also takes back live leases lets claim_batch's sweep steal
    records from their holders: A claims 10 records under a 10-minute lease, B's claim
    sweeps them back and claims them again. The ledger shows records claimed again under
    a live lease. Sequential, so nothing depends on scheduling."""
    with psycopg.connect(dsn, autocommit=True, application_name="storm-a") as a, \
            psycopg.connect(dsn, autocommit=True, application_name="storm-b") as b:
        ids = ledger_queue(a, mutant_reclaim_live_leases(), 20)
        got_a = ledger_claim(a, "storm-a", 10)
        got_b = ledger_claim(b, "storm-b", 10)
        assert got_b == got_a, "the mutant's sweep hands A's records to B"
        report = check_ledger(a, "storm", ids)
    assert {r[0] for r in report.double_claims} == set(got_a), \
        "the ledger checker missed stolen leases"


# Probabilistic: whether two claims of a free-running storm overlap depends on how the
# processes are scheduled, so these may miss; the forced controls above are the ones
# make test runs.
@pytest.mark.slow
def test_claim_without_skip_locked_is_caught_by_the_storm(dsn: str) -> None:
    """Without FOR UPDATE SKIP LOCKED (and so without the pending recheck), claimers that
    read the same snapshot hand out the same records: the ledger shows double claims."""
    report, claimed = storm_report(dsn, mutant_claim_no_lock(), 10, 4_000, 200)
    assert report.double_claims, "the storm checker missed double claims"
    assert claimed > 4_000


@pytest.mark.slow  # probabilistic, see above
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


def test_complete_without_holder_check_is_caught_by_the_mixed_run(dsn: str) -> None:
    """The mixed-operations run against a complete without the holder check. Its scripted
    phase always has a worker stall past its lease and complete, without its lease token, a
    record that was taken back and claimed by another worker: the mutant lets that
    completion through, and the history checker must report it (whatever the random part
    after it does)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(mutant_complete_no_holder())
    sh, script, conn = run_mixed(dsn, seconds=2.0, seed=11, min_claimed=0)
    with conn:
        assert sh.errors == []
        report = check_history(
            conn, frozenset({f"worker-{i}" for i in range(5)} | {"drainer"}))
    assert script["stale complete without token"] == 1, "the mutant lets it through"
    assert [r for r in report.stale_reports
            if "by worker-1: record held by worker-2" in r], report.stale_reports


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
