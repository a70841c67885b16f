"""Finds the sql/ and migrations/ folders: inside the wheel, or in the checkout."""
from __future__ import annotations

from pathlib import Path


def data_dir(name: str) -> Path:
    """The folder ``name`` ('sql' or 'migrations') shipped with pgclaim."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "_data" / name, here.parent.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"pgclaim: cannot find its {name}/ folder")
