"""Fixtures of the attack suite: its login roles (cluster-wide, made once per run and
dropped at its end) and a fresh pgclaim database per test with connections as them."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from _seckit import FUZZ_STATS, GROUPS, LOGINS, SecDb, drop_roles, ensure_roles


@pytest.fixture(scope="session")
def security_roles(cluster_url: str) -> Iterator[None]:
    """The suite's logins and group roles, created idempotently and dropped at the end."""
    ensure_roles(cluster_url)
    yield
    drop_roles(cluster_url, [*LOGINS, *GROUPS])


@pytest.fixture
def db(dsn: str, security_roles: None) -> Iterator[SecDb]:
    """A fresh pgclaim database (a copy of the template loaded from sql/)."""
    with psycopg.connect(dsn, autocommit=True) as su:
        sec = SecDb(dsn, su)
        try:
            yield sec
        finally:
            sec.close()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not FUZZ_STATS:
        return
    terminalreporter.section("pgclaim security fuzz")
    for name, stats in sorted(FUZZ_STATS.items()):
        outcomes = ", ".join(f"{k} {v}" for k, v in sorted(stats.items()) if k != "calls")
        terminalreporter.write_line(f"{name}: {stats.get('calls', 0)} calls ({outcomes})")
