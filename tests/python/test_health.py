"""health(): a long transaction counts only when it holds back this database's vacuum."""
from __future__ import annotations

import time

import psycopg
from pgdb import create_database, db_url, drop_database


def reasons(dsn: str) -> list[str]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("select pgclaim.health(max_xact_age => '1 second')").fetchone()
        assert row is not None
        return list(row[0]["reasons"])


def test_long_transaction_in_another_database_is_not_ours(
    dsn: str, cluster_url: str, template_db: str
) -> None:
    other = create_database(cluster_url, template_db)
    try:
        with psycopg.connect(db_url(cluster_url, other)) as elsewhere:
            elsewhere.execute("select txid_current()")  # holds an xid in the other database
            time.sleep(1.5)
            assert not [r for r in reasons(dsn) if "holds back vacuum" in r]
    finally:
        drop_database(cluster_url, other)


def test_long_transaction_in_this_database_degrades(dsn: str) -> None:
    with psycopg.connect(dsn) as here:
        here.execute("select txid_current()")
        time.sleep(1.5)
        with psycopg.connect(dsn, autocommit=True) as conn:
            row = conn.execute("select pgclaim.health(max_xact_age => '1 second')").fetchone()
        assert row is not None
        health = row[0]
        assert health["status"] == "degraded"
        assert any("holds back vacuum" in r for r in health["reasons"])
    assert not [r for r in reasons(dsn) if "holds back vacuum" in r]
