"""Exceptions of pgclaim, mapped from SQLSTATE in one place."""
from __future__ import annotations

import psycopg


class PgclaimError(Exception):
    """Base class of every pgclaim error; ``sqlstate`` holds the server's code, if any."""

    sqlstate: str | None = None

    def __init__(self, message: str, sqlstate: str | None = None) -> None:
        super().__init__(message)
        if sqlstate is not None:
            self.sqlstate = sqlstate


class QueueNotFound(PgclaimError):
    """PC001: the queue does not exist."""

    sqlstate = "PC001"


class RecordNotFound(PgclaimError):
    """PC002: the record does not exist."""

    sqlstate = "PC002"


class NotHolder(PgclaimError):
    """PC003: the worker does not hold the record (its lease was taken back)."""

    sqlstate = "PC003"


class QueueNotEmpty(PgclaimError):
    """PC004: drop_queue without force on a queue with unfinished records."""

    sqlstate = "PC004"


class InvalidArgument(PgclaimError):
    """22023 or 22004: an argument was invalid or null."""


class TransientError(PgclaimError):
    """A failure worth retrying (connection lost, admin shutdown, deadlock, ...)."""


_BY_SQLSTATE: dict[str, type[PgclaimError]] = {
    "PC001": QueueNotFound,
    "PC002": RecordNotFound,
    "PC003": NotHolder,
    "PC004": QueueNotEmpty,
    "22023": InvalidArgument,
    "22004": InvalidArgument,
}


def translate(exc: psycopg.Error) -> PgclaimError:
    """Returns the pgclaim exception for a psycopg error, keeping its SQLSTATE."""
    state = exc.sqlstate
    diag = getattr(exc, "diag", None)
    message = (diag.message_primary if diag is not None else None) or str(exc)
    cls = _BY_SQLSTATE.get(state or "", PgclaimError)
    err = cls(message, state)
    err.__cause__ = exc
    return err
