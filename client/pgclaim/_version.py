"""The package's version and the schema version it needs, both read from what is shipped.

``package_version()`` comes from the installed distribution's metadata (``pyproject.toml``'s
``version``); ``required_schema_version()`` is the number of the newest migration in the
``migrations/`` folder shipped with the package, which is what ``pgclaim.schema_version()``
returns once those migrations are applied.
"""
from __future__ import annotations

import functools
import re
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from ._resources import data_dir

#: a migration file: ``NNNN_name.sql`` (``NNNN_name.rollback.sql`` is its way back)
MIGRATION_NAME = re.compile(r"^(\d{4})_.+\.sql$")


def package_version() -> str:
    """The version of the installed ``pgclaim`` distribution (``"unknown"`` if not installed)."""
    try:
        return version("pgclaim")
    except PackageNotFoundError:
        return "unknown"


def newest_migration(folder: Path) -> int:
    """The highest ``NNNN`` among the ``NNNN_name.sql`` migrations of ``folder``
    (rollback files do not count)."""
    numbers = [int(match.group(1)) for path in folder.iterdir()
               if not path.name.endswith(".rollback.sql")
               and (match := MIGRATION_NAME.match(path.name))]
    if not numbers:
        raise FileNotFoundError(f"pgclaim: no NNNN_name.sql migration in {folder}")
    return max(numbers)


@functools.cache
def required_schema_version() -> int:
    """The schema version this client needs: the newest migration it ships."""
    return newest_migration(data_dir("migrations"))


__all__ = ["MIGRATION_NAME", "newest_migration", "package_version", "required_schema_version"]
