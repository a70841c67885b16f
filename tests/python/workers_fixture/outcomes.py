"""A handler whose outcome the payload names, for the tests of handler metrics."""
from __future__ import annotations

from pgclaim import Claimed, Fatal, Retry


def by_payload(rec: Claimed) -> None:
    """Returns for ``{"outcome": "ok"}``, raises ``Retry`` for ``"retry"``, ``Fatal`` for
    ``"fatal"`` and ``ValueError`` for anything else."""
    outcome = rec.payload.get("outcome") if isinstance(rec.payload, dict) else None
    if outcome == "ok":
        return
    if outcome == "retry":
        raise Retry(after=3600)
    if outcome == "fatal":
        raise Fatal("given up")
    raise ValueError(f"outcome {outcome!r}")
