"""Fixtures of the chaos suite, and the reliability table printed at the end of the run."""
from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from faults import FaultProxy
from harness import AuditResult, ChaosRun
from pgcluster import PrivateCluster

DOCS = Path(__file__).resolve().parents[3] / "docs" / "reliability.md"
BEGIN, END = "<!-- chaos-table:begin -->", "<!-- chaos-table:end -->"
ROWS: list[dict[str, Any]] = []


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("chaos")
    group.addoption("--chaos-engine", default=os.environ.get("PGCLAIM_CHAOS_ENGINE", "worker"),
                    choices=("worker", "client"),
                    help="worker loop under test: pgclaim.Worker (worker) or a plain "
                         "QueueClient loop (client)")
    group.addoption("--write-reliability-docs", action="store_true",
                    help="write the table of this run into docs/reliability.md")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: long variant, run with --heavy")
    config.addinivalue_line("markers", "needs_root: needs namespaces, mounts or cgroups")


@pytest.fixture
def engine(request: pytest.FixtureRequest) -> str:
    """The worker loop the rows run through."""
    return str(request.config.getoption("--chaos-engine"))


@pytest.fixture
def chaos_runs() -> Iterator[list[ChaosRun]]:
    """The runs of a test; closed last, after the proxy and the private cluster (which stop
    the workers first, while the path to the database still works)."""
    runs: list[ChaosRun] = []
    yield runs
    for run in runs:
        run.close()


@pytest.fixture
def chaos(dsn: str, engine: str,
          chaos_runs: list[ChaosRun]) -> Callable[..., ChaosRun]:
    """A factory of ``ChaosRun`` on the test's fresh database; every run is closed after."""

    def make(db: str | None = None, **kw: Any) -> ChaosRun:
        kw.setdefault("engine", engine)
        run = ChaosRun(db or dsn, **kw)
        chaos_runs.append(run)
        return run

    return make


@pytest.fixture
def proxy(dsn: str, chaos_runs: list[ChaosRun]) -> Iterator[FaultProxy]:
    """A fault proxy in front of the shared cluster (pass mode to start with)."""
    host_port = dsn.split("@", 1)[1].split("/", 1)[0]
    host, port = host_port.rsplit(":", 1)
    p = FaultProxy(host, int(port))
    yield p
    p.set("pass", delay=0.0, fail_every=0)
    for run in chaos_runs:  # workers deregister through the proxy, then it goes
        run.stop_all()
    p.close()


@pytest.fixture
def private_cluster(chaos_runs: list[ChaosRun]) -> Iterator[PrivateCluster]:
    """A cluster of the test's own, to crash at will; stopped and deleted afterwards."""
    cluster = PrivateCluster()
    try:
        yield cluster
    finally:
        for run in chaos_runs:  # workers stop while their database is still there
            run.stop_all()
        cluster.close()


@pytest.fixture
def orphan_slack(request: pytest.FixtureRequest) -> float:
    """Seconds allowed on top of lease + reclaim interval for a dead worker's records to
    come back. With --heavy (make chaos, which writes docs/reliability.md): 1 s, the bound
    that page states for a quiet machine. In make test, where the machine may be busy with
    other work: 15 s, a bound on a hang rather than on speed, still far below the 60 s
    worker_timeout after which the records would come back without any lease expiry."""
    return 1.0 if request.config.getoption("--heavy") else 15.0


@pytest.fixture
def report(request: pytest.FixtureRequest) -> Callable[..., None]:
    """Records a row of the reliability table and fails the test on any violation."""

    def check(fault: str, result: AuditResult, run: ChaosRun | None = None,
              **extra: Any) -> None:
        row = result.row(fault)
        row.update(extra)
        row["engine"] = request.config.getoption("--chaos-engine")
        ROWS.append(row)
        if result.violations:
            logs = run.logs() if run is not None else ""
            pytest.fail(f"{fault}: " + "; ".join(result.violations) + "\n" + logs[-6000:])

    return check


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def table() -> str:
    """The rows of this run as a Markdown table."""
    head = ("| fault | records | lost | completed twice | handled twice | recovery s "
            "| orphan back s | audit |\n|---|---:|---:|---:|---:|---:|---:|---|")
    lines = [head]
    for r in ROWS:
        lines.append(
            f"| {r['fault']} | {r['records']} | {r['lost']} | {r['completed_twice']} | "
            f"{r['handled_twice']} | {_fmt(r['recovery_s'])} | {_fmt(r['orphan_max_s'])} | "
            f"{'pass' if r['ok'] else 'FAIL'} |")
    return "\n".join(lines)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int,
                            config: pytest.Config) -> None:
    if not ROWS:
        return
    tr = terminalreporter
    tr.section("pgclaim reliability (chaos matrix)")
    tr.write_line(f"engine: {ROWS[0]['engine']}")
    for line in table().splitlines():
        tr.write_line(line)
    if config.getoption("--write-reliability-docs"):
        stamp = time.strftime("%Y-%m-%d")
        block = (f"{BEGIN}\nMeasured {stamp}, engine `{ROWS[0]['engine']}`, PostgreSQL 15, "
                 f"2 shared cores.\n\n{table()}\n{END}")
        text = DOCS.read_text() if DOCS.exists() else f"# Reliability\n\n{BEGIN}\n{END}\n"
        if BEGIN in text:
            text = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: block, text,
                          flags=re.DOTALL)
        else:
            text += "\n" + block + "\n"
        DOCS.write_text(text)
        tr.write_line(f"written to {DOCS.relative_to(DOCS.parents[1])}")
