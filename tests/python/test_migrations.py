"""Migrations: make migrate twice changes nothing, migrations/ builds what sql/ defines,
released migrations are frozen, the unreleased ones are up to date with sql/, and the
schema version is one fact."""
from __future__ import annotations

import hashlib
import re
import subprocess
from pathlib import Path

import psycopg
from pgdb import ROOT, create_database, db_url, drop_database

from pgclaim.migrate import migrate

#: released migrations and the sha256 of each (migrations/RELEASED, ``sha256sum`` lines): a
#: released migration is never edited
RELEASED = dict(reversed(line.split()) for line in
                Path(ROOT, "migrations", "RELEASED").read_text().splitlines() if line.strip())


def schema_dump(url: str) -> str:
    """pg_dump of schema pgclaim (owners and ACLs included), normalised for comparison."""
    out = subprocess.run(
        ["pg_dump", "--schema-only", "--schema=pgclaim", url],
        check=True, capture_output=True, text=True,
    ).stdout
    lines = [
        line for line in out.splitlines()
        if line.strip() and not line.startswith("--") and not line.startswith("\\")
        and not line.startswith("SET ") and "pg_catalog.set_config" not in line
    ]
    return "\n".join(lines)


def migration_numbers() -> list[int]:
    return sorted(int(p.name[:4]) for p in Path(ROOT, "migrations").glob("[0-9]*.sql")
                  if not p.name.endswith(".rollback.sql"))


def test_migrations_build_what_sql_defines(cluster_url: str, template_db: str) -> None:
    name = create_database(cluster_url, "template0")
    try:
        url = db_url(cluster_url, name)
        applied = migrate(url)
        assert applied, "an empty database gets every migration"
        from_migrations = schema_dump(url)
        from_sql = schema_dump(db_url(cluster_url, template_db))
        assert "create_queue" in from_sql and "GRANT" in from_sql
        assert "OWNER TO pgclaim_owner" in from_sql
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
            version = conn.execute("select pgclaim.schema_version()").fetchone()
        assert version == (migration_numbers()[-1],)
    finally:
        drop_database(cluster_url, name)


def test_migration_file_names_are_ordered() -> None:
    names = sorted(p.name for p in Path(ROOT, "migrations").glob("*.sql"))
    assert names and all(re.match(r"^\d{4}_[a-z0-9_]+(\.rollback)?\.sql$", n) for n in names)
    assert migration_numbers() == list(range(1, len(migration_numbers()) + 1))


def test_released_migrations_are_frozen() -> None:
    for name, digest in RELEASED.items():
        text = Path(ROOT, "migrations", name).read_bytes()
        assert hashlib.sha256(text).hexdigest() == digest, f"{name} was edited after release"


def test_unreleased_migrations_match_sql() -> None:
    """Every migration built from migrations/src/ is what scripts/build_migration.py writes
    from today's sql/ (make migration regenerates them)."""
    result = subprocess.run(
        [str(ROOT / "scripts" / "build_migration.py"), "--check"],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stderr
    sources = {p.name for p in Path(ROOT, "migrations", "src").glob("*.sql")}
    built = {p.name for p in Path(ROOT, "migrations").glob("*.sql")}
    assert sources and sources <= built
    assert set(RELEASED) | sources == built, "every migration is released or built from src/"


def test_schema_version_is_the_newest_migration() -> None:
    """The one fact: schema_version() returns the number of the newest migration, and the
    client derives the version it needs from the same folder."""
    text = Path(ROOT, "sql", "30_api", "pgclaim.schema_version.sql").read_text()
    literal = re.search(r"\$fn\$\s*select (\d+);\s*\$fn\$", text)
    assert literal, "schema_version() returns a literal"
    assert int(literal.group(1)) == migration_numbers()[-1]
