"""Migrations: make migrate twice changes nothing, and migrations/ builds what sql/ defines."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import psycopg
from pgdb import ROOT, create_database, db_url, drop_database

from pgclaim.migrate import migrate


def schema_dump(url: str) -> str:
    """pg_dump of schema pgclaim (ACLs included), normalised for comparison."""
    out = subprocess.run(
        ["pg_dump", "--schema-only", "--no-owner", "--schema=pgclaim", url],
        check=True, capture_output=True, text=True,
    ).stdout
    lines = [
        line for line in out.splitlines()
        if line.strip() and not line.startswith("--") and not line.startswith("\\")
        and not line.startswith("SET ") and "pg_catalog.set_config" not in line
    ]
    return "\n".join(lines)


def test_migrations_build_what_sql_defines(cluster_url: str, template_db: str) -> None:
    name = create_database(cluster_url, "template0")
    try:
        url = db_url(cluster_url, name)
        applied = migrate(url)
        assert applied, "an empty database gets every migration"
        from_migrations = schema_dump(url)
        from_sql = schema_dump(db_url(cluster_url, template_db))
        assert "create_queue" in from_sql and "GRANT" in from_sql
        assert from_migrations == from_sql
    finally:
        drop_database(cluster_url, name)


def test_migrate_twice_changes_nothing(cluster_url: str) -> None:
    name = create_database(cluster_url, "template0")
    try:
        url = db_url(cluster_url, name)
        assert migrate(url) != []
        before = schema_dump(url)
        assert migrate(url) == []
        assert schema_dump(url) == before
        with psycopg.connect(url) as conn:
            assert conn.execute("select pgclaim.schema_version()").fetchone() == (1,)
    finally:
        drop_database(cluster_url, name)


def test_migration_file_names_are_ordered() -> None:
    names = sorted(p.name for p in Path(ROOT, "migrations").glob("*.sql"))
    assert names and all(re.match(r"^\d{4}_[a-z0-9_]+(\.rollback)?\.sql$", n) for n in names)
