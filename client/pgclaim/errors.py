"""Exceptions of pgclaim, mapped from SQLSTATE in one place (``translate``).

Every error the client raises is a ``PgclaimError`` carrying the server's ``sqlstate`` (``None``
when the connection itself failed, and for ``SchemaMismatch``, which the client raises itself
after comparing versions). ``classify`` says whether a psycopg error is worth a retry;
the retry rules per call live in ``pgclaim.retry``.
"""
from __future__ import annotations

import enum

import psycopg
import psycopg_pool


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


class WorkerIdTaken(PgclaimError):
    """PC005: the worker id belongs to another role (each role registers its own ids)."""

    sqlstate = "PC005"


class LeaseNotHeld(PgclaimError):
    """PC006: a write fenced by ``pgclaim.fence_trigger`` carried a claim that no longer
    holds (its lease expired or was taken back, the record finished, or another token)."""

    sqlstate = "PC006"


class InstallRefused(PgclaimError):
    """42710: installing would adopt a schema or role that pgclaim did not make (see
    ``pgclaim migrate --adopt-existing`` in docs/install.md)."""

    sqlstate = "42710"


class InvalidArgument(PgclaimError):
    """22023 or 22004: an argument was invalid or null."""


class PermissionDenied(PgclaimError):
    """42501: the role may not call this function (see the pgclaim_* roles)."""

    sqlstate = "42501"


class SchemaMissing(PgclaimError):
    """3F000 or 42883: the pgclaim schema (or this function of it) is not installed."""


class SchemaMismatch(PgclaimError):
    """The installed schema is older than this client needs: run ``pgclaim migrate``.

    Raised by ``QueueClient.check_schema`` (and so by a client's first call, and by a
    ``Worker`` as it starts); ``installed`` and ``required`` are the two versions. A newer
    schema is accepted: releases keep older clients' calls working.
    """

    def __init__(self, installed: int, required: int, client_version: str) -> None:
        super().__init__(
            f"pgclaim: the database has schema version {installed}, this client (pgclaim "
            f"{client_version}) needs schema version {required} or later; run "
            '"pgclaim migrate"')
        self.installed = installed
        self.required = required
        self.client_version = client_version

    def __reduce__(self) -> tuple[type[SchemaMismatch], tuple[int, int, str]]:
        return type(self), (self.installed, self.required, self.client_version)


class TransientError(PgclaimError):
    """A failure worth retrying (connection lost, admin shutdown, deadlock, ...).

    Raised once the retry policy gave up, or at once for calls that may not be retried.
    """


class OutcomeUnknown(TransientError):
    """The connection broke after the statement was sent: it may or may not have run.

    Raised instead of a retry for calls that are not idempotent (``enqueue`` without a
    ``dedup_key``, ``enqueue_many``, ``claim``, ``fail``, ``drop_queue``). Records of a ``claim``
    whose outcome is unknown come back when their lease expires.
    """


class Kind(enum.Enum):
    """How a psycopg error bears on a retry."""

    #: the statement surely did not commit (refused connection, rollback the server reported)
    ROLLED_BACK = "not run"
    #: the statement timed out (rolled back), worth retrying for idempotent calls only
    TIMEOUT = "statement timeout"
    #: the connection broke while the statement was in flight: outcome unknown
    LOST = "connection lost"
    #: not transient: raise it
    PERMANENT = "permanent"


#: SQLSTATEs after which the server rolled the statement back and a retry may succeed:
#: admin shutdown, cannot connect now, too many connections, serialization failure,
#: deadlock, lock not available.
ROLLED_BACK_STATES = frozenset({"57P01", "57P03", "53300", "40001", "40P01", "55P03"})
#: class 53, insufficient resources (disk full, out of memory, too many connections,
#: configuration limit): the statement was rolled back and may succeed once they free up.
RESOURCE_CLASS = "53"
#: statement timeout (query_canceled), retried for idempotent calls only.
TIMEOUT_STATES = frozenset({"57014"})

_CONNECTION_WORDS = (
    "connection refused", "could not connect", "connection failed", "server closed the connection",
    "connection is closed", "connection is lost", "consuming input failed", "sending query failed",
    "terminating connection", "the connection is closed", "no connection to the server",
    "connection timeout", "timeout expired", "connection reset", "broken pipe",
    "could not receive data", "could not send data", "ssl syscall error", "eof detected",
    "connection to server", "server conn crashed", "the database system is",
)

_BY_SQLSTATE: dict[str, type[PgclaimError]] = {
    "PC001": QueueNotFound,
    "PC002": RecordNotFound,
    "PC003": NotHolder,
    "PC004": QueueNotEmpty,
    "PC005": WorkerIdTaken,
    "PC006": LeaseNotHeld,
    "42710": InstallRefused,
    "22023": InvalidArgument,
    "22004": InvalidArgument,
    "42501": PermissionDenied,
    "3F000": SchemaMissing,
    "42883": SchemaMissing,
}


def is_connection_error(exc: BaseException) -> bool:
    """True when ``exc`` says the connection failed or broke (it carries no SQLSTATE)."""
    if isinstance(exc, psycopg_pool.PoolTimeout):
        return True
    if not isinstance(exc, psycopg.OperationalError):
        return False
    state = exc.sqlstate
    if state is not None:
        return state.startswith("08")
    text = str(exc).lower()
    return any(word in text for word in _CONNECTION_WORDS) or isinstance(
        exc, psycopg.errors.ConnectionTimeout)


def classify(exc: BaseException, *, sent: bool = True) -> Kind:
    """How ``exc`` bears on a retry; ``sent`` says the statement may have reached the server."""
    state = getattr(exc, "sqlstate", None)
    if state in ROLLED_BACK_STATES or (state or "").startswith(RESOURCE_CLASS):
        return Kind.ROLLED_BACK
    if state in TIMEOUT_STATES:
        return Kind.TIMEOUT
    if is_connection_error(exc):
        return Kind.LOST if sent else Kind.ROLLED_BACK
    return Kind.PERMANENT


def translate(exc: psycopg.Error, kind: Kind | None = None) -> PgclaimError:
    """Returns the pgclaim exception for a psycopg error, keeping its SQLSTATE."""
    state = exc.sqlstate
    diag = getattr(exc, "diag", None)
    message = (diag.message_primary if diag is not None else None) or str(exc).strip()
    if kind is None:
        kind = classify(exc)
    cls: type[PgclaimError]
    if kind is Kind.PERMANENT:
        cls = _BY_SQLSTATE.get(state or "", PgclaimError)
    else:
        cls = TransientError
    err = cls(message, state)
    err.__cause__ = exc
    return err
