"""Installs or upgrades the pgclaim schema with yoyo-migrations."""
from __future__ import annotations

from yoyo import get_backend, read_migrations  # type: ignore[import-untyped]

from ._dsn import redact
from ._resources import data_dir


def yoyo_url(dsn: str) -> str:
    """The yoyo URL of a libpq URL: yoyo drives psycopg 3 through ``postgresql+psycopg``."""
    for prefix in ("postgresql://", "postgres://"):
        if dsn.startswith(prefix):
            return "postgresql+psycopg://" + dsn[len(prefix):]
    if dsn.startswith("postgresql+psycopg://"):
        return dsn
    raise ValueError("pgclaim: migrate needs a URL with the scheme postgresql:// or postgres:// "
                     f"(yoyo takes no key=value DSN), got {redact(dsn)!r}")


def migrate(dsn: str) -> list[str]:
    """Applies the migrations not yet applied, under yoyo's lock; returns their ids."""
    backend = get_backend(yoyo_url(dsn))
    migrations = read_migrations(str(data_dir("migrations")))
    with backend.lock():
        todo = backend.to_apply(migrations)
        backend.apply_migrations(todo)
    return [m.id for m in todo]
