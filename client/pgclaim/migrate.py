"""Installs or upgrades the pgclaim schema with yoyo-migrations.

The migrations run on connections whose ``search_path`` is pinned to ``pg_catalog, pg_temp``:
nothing of the installer's own schemas (an operator or type planted in ``public``) can be bound
into pgclaim's indexes, views or function signatures while they are created. yoyo keeps its
bookkeeping on a separate connection, with the installer's usual path.

Before the first migration of a fresh install, ``migrate`` refuses a schema ``pgclaim`` that
already exists (and before an upgrade, one that neither pgclaim_owner nor the installing role
owns), and ``sql/00_roles.sql`` refuses ``pgclaim_*`` roles that pgclaim did not make
(``adopt_existing`` adopts both on purpose).
"""
from __future__ import annotations

from typing import Any

import psycopg
from yoyo import read_migrations  # type: ignore[import-untyped]
from yoyo.backends.core.postgresql import (  # type: ignore[import-untyped]
    PostgresqlPsycopgBackend,
)
from yoyo.connections import (  # type: ignore[import-untyped]
    default_migration_table,
    parse_uri,
)

from ._dsn import redact
from ._resources import data_dir
from .errors import InstallRefused

#: the search_path every migration runs under
PINNED_SEARCH_PATH = "pg_catalog, pg_temp"
#: the first migration: a database that has not applied it is a fresh install
FIRST_MIGRATION = "0001_initial"


def yoyo_url(dsn: str) -> str:
    """The yoyo URL of a libpq URL: yoyo drives psycopg 3 through ``postgresql+psycopg``."""
    for prefix in ("postgresql://", "postgres://"):
        if dsn.startswith(prefix):
            return "postgresql+psycopg://" + dsn[len(prefix):]
    if dsn.startswith("postgresql+psycopg://"):
        return dsn
    raise ValueError("pgclaim: migrate needs a URL with the scheme postgresql:// or postgres:// "
                     f"(yoyo takes no key=value DSN), got {redact(dsn)!r}")


def _settings(adopt_existing: bool) -> dict[str, str]:
    settings = {"search_path": PINNED_SEARCH_PATH}
    if adopt_existing:
        settings["pgclaim.adopt_existing"] = "on"
    return settings


def _backend(dsn: str, adopt_existing: bool) -> Any:
    """yoyo's backend for ``dsn``, whose migration connections run under ``_settings``."""
    settings = _settings(adopt_existing)

    class Pinned(PostgresqlPsycopgBackend):  # type: ignore[misc]
        """A connection that applies migrations."""

        def init_connection(self, connection: Any) -> None:
            super().init_connection(connection)
            with connection.cursor() as cur:
                for name, value in settings.items():
                    cur.execute("select pg_catalog.set_config(%s, %s, false)", (name, value))

    class Bookkeeping(PostgresqlPsycopgBackend):  # type: ignore[misc]
        """yoyo's own connection: its tables live in the installer's schema."""

        def copy(self) -> Any:
            return Pinned(self.uri, self.migration_table)

    backend = Bookkeeping(parse_uri(yoyo_url(dsn)), default_migration_table)
    backend.init_database()
    return backend


def preflight(dsn: str, *, fresh: bool, adopt_existing: bool = False) -> None:
    """Refuses to install over a schema or roles that pgclaim did not make.

    On a fresh install (``fresh``), an existing schema ``pgclaim`` is refused unless
    ``adopt_existing``; on an upgrade, so is a schema ``pgclaim`` that belongs to neither
    pgclaim_owner nor the installing role. Then ``sql/00_roles.sql`` checks, creates and
    marks the roles. Raises ``InstallRefused`` (42710) with the reason.
    """
    roles = (data_dir("sql") / "00_roles.sql").read_text()
    with psycopg.connect(dsn, autocommit=False) as conn:
        for name, value in _settings(adopt_existing).items():
            conn.execute("select pg_catalog.set_config(%s, %s, true)", (name, value))
        row = conn.execute(
            "select n.nspowner::pg_catalog.regrole::pg_catalog.text, "
            "n.nspowner = (select a.oid from pg_catalog.pg_roles as a "
            "where a.rolname = current_user) "
            "from pg_catalog.pg_namespace as n where n.nspname = 'pgclaim'").fetchone()
        if row is not None and fresh and not adopt_existing:
            raise InstallRefused(
                "pgclaim: schema pgclaim already exists and was not installed by pgclaim "
                "migrate; drop it, or adopt it on purpose with --adopt-existing", "42710")
        # An upgrade finds the schema of an earlier install: pgclaim_owner's, or (release
        # 0.1.0) the installer's own. yoyo's bookkeeping alone does not prove that: a role
        # that may create schemas can make schema pgclaim and the bookkeeping of an earlier
        # install (in a schema named like the installer, first on its search_path).
        if row is not None and row[0] != "pgclaim_owner" and not row[1] and not adopt_existing:
            raise InstallRefused(
                f"pgclaim: schema pgclaim belongs to role {row[0]}, neither pgclaim_owner nor "
                "the installing role, so pgclaim did not install it; drop it, or adopt it on "
                "purpose with --adopt-existing", "42710")
        try:
            conn.execute(roles)
        except psycopg.Error as exc:
            if exc.sqlstate == "42710":
                raise InstallRefused(str(exc).splitlines()[0], "42710") from exc
            raise


def migrate(dsn: str, *, adopt_existing: bool = False) -> list[str]:
    """Applies the migrations not yet applied, under yoyo's lock; returns their ids.

    ``adopt_existing`` lets a fresh install take over a schema ``pgclaim`` and ``pgclaim_*``
    roles that someone else made (see docs/install.md).
    """
    backend = _backend(dsn, adopt_existing)
    try:
        migrations = read_migrations(str(data_dir("migrations")))
        with backend.lock():
            todo = backend.to_apply(migrations)
            if todo:
                fresh = not any(m.id == FIRST_MIGRATION for m in migrations
                                if backend.is_applied(m))
                preflight(dsn, fresh=fresh, adopt_existing=adopt_existing)
            backend.apply_migrations(todo)
        return [m.id for m in todo]
    finally:
        backend.connection.close()
