#!/usr/bin/env python3
"""Writes a yoyo migration that installs everything sql/ defines.

    scripts/build_migration.py migrations/0001_initial.sql

A released migration is frozen: once it has shipped, later changes go into a
new migration (written by hand: `create or replace function`, `alter table`),
and tests/python/test_migrations.py proves that the migrations and sql/ still
build the same schema.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    out = Path(sys.argv[1])
    files = subprocess.run(
        [str(ROOT / "scripts" / "sql_files.sh")], check=True, capture_output=True, text=True
    ).stdout.split()
    parts = [
        (
            "-- Generated from sql/ by scripts/build_migration.py: installs pgclaim.\n"
            "-- Frozen once released: later changes go into new migrations.\n"
        )
    ]
    for name in files:
        parts.append(f"\n-- ---- {name} ----\n")
        parts.append((ROOT / name).read_text())
    out.write_text("".join(parts))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
