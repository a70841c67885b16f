"""Fixtures: the throwaway cluster, a migrated template, a fresh database per test."""
from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from pgdb import ROOT, add_test_views, create_database, db_url, drop_database

TEMPLATE = f"pgclaim_template_{os.getpid()}"



def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--heavy", action="store_true", help="run the long (slow) variants too")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "chaos: fault-injection tests (make chaos)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--heavy"):
        return
    skip = pytest.mark.skip(reason="long variant: needs --heavy (make chaos, or pytest --heavy)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def cluster_url() -> str:
    """URL of the maintenance database of the throwaway cluster."""
    url = os.environ.get("PGCLAIM_TEST_URL")
    if not url:
        url = subprocess.run(
            [str(ROOT / "scripts" / "cluster.sh"), "start"],
            check=True, capture_output=True, text=True,
        ).stdout.strip()
    return url


@pytest.fixture(scope="session")
def template_db(cluster_url: str) -> Iterator[str]:
    """A database loaded from sql/ (one per pytest process), copied for every test."""
    subprocess.run(
        [str(ROOT / "scripts" / "reload.sh"), cluster_url, TEMPLATE],
        check=True, capture_output=True, text=True,
    )
    with psycopg.connect(cluster_url, autocommit=True) as conn:
        conn.execute(f"alter database {TEMPLATE} set synchronous_commit = off")
    add_test_views(db_url(cluster_url, TEMPLATE))
    yield TEMPLATE
    drop_database(cluster_url, TEMPLATE)


@pytest.fixture
def dsn(cluster_url: str, template_db: str) -> Iterator[str]:
    """The URL of a fresh pgclaim database, dropped after the test."""
    name = create_database(cluster_url, template_db)
    try:
        yield db_url(cluster_url, name)
    finally:
        drop_database(cluster_url, name)


@pytest.fixture
def conn(dsn: str) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit connection to the fresh database."""
    with psycopg.connect(dsn, autocommit=True) as c:
        yield c
