"""The pgclaim command line."""
from __future__ import annotations

import argparse
import sys

from .client import default_dsn
from .migrate import migrate


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``pgclaim`` command."""
    parser = argparse.ArgumentParser(prog="pgclaim", description=__doc__)
    parser.add_argument("--database", default=None, help="libpq URL (default: DATABASE_URL)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="install or upgrade the pgclaim schema")
    args = parser.parse_args(argv)
    dsn = args.database or default_dsn()
    if args.command == "migrate":
        applied = migrate(dsn)
        print(f"pgclaim: applied {len(applied)} migration(s)" + (": " + ", ".join(applied) if applied else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
