"""QueueClient: one method per pgclaim SQL function, each one SQL call.

What each method sends and how its answer decodes is built in ``pgclaim._calls``, shared with
``AsyncQueueClient`` (``pgclaim.aio``); this module runs those calls on psycopg's blocking
connections, and holds the plumbing both clients share (``ClientBase``).
"""
from __future__ import annotations

import logging
import os
import time
import weakref
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, Generic, Self, TypeVar, overload

import psycopg
from psycopg_pool import AsyncConnectionPool, ConnectionPool
from psycopg_pool.base import AttemptWithBackoff

from . import _calls, _dsn
from ._calls import Call
from ._types import (
    MAX_BATCH_SIZE,
    Claimed,
    DeadLetter,
    Duration,
    Item,
    Latency,
    Metric,
    QueueStats,
    Schedule,
    StuckRecord,
    WorkerStatus,
    as_interval,
)
from ._version import package_version, required_schema_version
from .errors import SchemaMismatch, translate
from .instance import application_name, instance_id
from .retry import NO_RETRY, Attempt, RetryPolicy, call_with_retry, log_extra
from .retry import logger as _default_logger

T = TypeVar("T")
P = TypeVar("P", bound="ConnectionPool[Any] | AsyncConnectionPool[Any]")
C = TypeVar("C", bound="psycopg.Connection[Any] | psycopg.AsyncConnection[Any]")


def default_dsn() -> str:
    """The DSN to use when none is given: ``DATABASE_URL``, else ``""``.

    An empty DSN lets libpq read its ``PG*`` variables (``PGHOST``, ``PGDATABASE``, ...).
    """
    return os.environ.get("DATABASE_URL", "")


def _ms(value: Duration) -> int:
    interval = as_interval(value)
    assert interval is not None
    return int(interval.total_seconds() * 1000)


class _CappedAttempt(AttemptWithBackoff):
    """A reconnection attempt whose delay stops growing at ``max_delay`` seconds."""

    def __init__(self, *, timeout: float, max_delay: float) -> None:
        super().__init__(timeout=timeout)
        self.max_delay = max_delay

    def update_delay(self, now: float) -> None:
        super().update_delay(now)
        self.delay = min(self.delay, self.max_delay)


class _Pool(ConnectionPool):
    """The pool a client owns: psycopg_pool doubles the delay between reconnection
    attempts without bound (up to ``reconnect_timeout``), so after a long outage a pool
    could wait a minute after the database came back; this one retries at least every
    ``reconnect_delay_max`` seconds."""

    reconnect_delay_max = 2.0

    def _add_connection(
        self, attempt: AttemptWithBackoff | None, growing: bool = False,
    ) -> None:
        if attempt is None:
            attempt = _CappedAttempt(
                timeout=self.reconnect_timeout, max_delay=self.reconnect_delay_max)
        super()._add_connection(attempt, growing)


class ClientBase(Generic[P, C]):
    """What ``QueueClient`` and ``AsyncQueueClient`` share: their settings, the pool they
    own or borrow, the caller's connection, retries, the idle check of pooled connections
    and the schema check of the first call. Subclasses make the pool (``_new_pool``) and run
    calls (``_call``)."""

    _pool_type: type[P]
    _conn_type: type[C]

    def __init__(
        self,
        dsn_or_pool: str | P | C | None = None,
        *,
        retry: RetryPolicy | None = None,
        logger: logging.Logger | None = None,
        min_size: int = 1,
        max_size: int = 4,
        pool_timeout: float = 10.0,
        connect_timeout: int = 5,
        statement_timeout: Duration | None = 30.0,
        lock_timeout: Duration | None = None,
        keepalives_idle: int = 30,
        keepalives_interval: int = 10,
        keepalives_count: int = 3,
        tcp_user_timeout: Duration | None = 30.0,
        reconnect_timeout: float = 300.0,
        check_idle_after: float = 1.0,
        reconnect_delay_max: float = 2.0,
        prepare_threshold: int | None = 5,
        application_name_suffix: str = "",
        check_schema: bool = True,
    ) -> None:
        self.instance_id = instance_id()
        self._schema_unchecked = check_schema
        self._log = logger or _default_logger
        self._conn: C | None = None
        self._pool: P | None = None
        self._owns_pool = False
        self.retry = retry or RetryPolicy()
        self.check_idle_after = check_idle_after
        self._idle_since: weakref.WeakKeyDictionary[C, float] = weakref.WeakKeyDictionary()
        if isinstance(dsn_or_pool, self._pool_type):
            self._pool = dsn_or_pool
        elif isinstance(dsn_or_pool, self._conn_type):
            self._conn = dsn_or_pool
            self.retry = NO_RETRY
        elif dsn_or_pool is not None and not isinstance(dsn_or_pool, str):
            raise TypeError(
                f"pgclaim: {type(self).__name__} takes a DSN, a {self._pool_type.__name__} or"
                f" a {self._conn_type.__name__}, not a {type(dsn_or_pool).__name__}")
        else:
            self.dsn = default_dsn() if dsn_or_pool is None else dsn_or_pool
            _dsn.check(self.dsn)
            options = []
            if statement_timeout is not None:
                options.append(f"-c statement_timeout={_ms(statement_timeout)}")
            if lock_timeout is not None:
                options.append(f"-c lock_timeout={_ms(lock_timeout)}")
            kwargs: dict[str, Any] = {
                "autocommit": True,
                "application_name": application_name(application_name_suffix),
                "connect_timeout": connect_timeout,
                "keepalives": 1,
                "keepalives_idle": keepalives_idle,
                "keepalives_interval": keepalives_interval,
                "keepalives_count": keepalives_count,
                "prepare_threshold": prepare_threshold,
            }
            if tcp_user_timeout is not None:
                kwargs["tcp_user_timeout"] = _ms(tcp_user_timeout)
            if options:
                kwargs["options"] = " ".join(options)
            self.connect_kwargs = kwargs
            self._pool = self._new_pool(
                self.dsn, kwargs=kwargs, min_size=min_size, max_size=max_size,
                timeout=pool_timeout, reconnect_timeout=reconnect_timeout,
                name=f"pgclaim-{self.instance_id}", reconnect_delay_max=reconnect_delay_max)
            self._owns_pool = True

    def _new_pool(self, dsn: str, *, reconnect_delay_max: float, **settings: Any) -> P:
        """The pool a client built from a DSN owns, opened (or to be opened) without waiting
        for its first connection: a client may start before its database."""
        raise NotImplementedError

    def _idle_long(self, conn: C) -> bool:
        """Whether pooled connection ``conn`` sat idle ``check_idle_after`` seconds or more
        (a connection used a moment ago is lent without a probe: a round trip saved per
        call on a busy worker)."""
        since = self._idle_since.get(conn)
        return since is None or time.monotonic() - since >= self.check_idle_after

    def _returned(self, conn: C) -> None:
        """Notes when ``conn`` goes back to the pool, for ``_idle_long``. (Noted by the call
        rather than by a pool ``reset`` callback, which would make the pool take every
        connection back on a worker of its own: a hand-off per call.)"""
        self._idle_since[conn] = time.monotonic()

    def _reconnect_failed(self, pool: P) -> None:
        self._log.error("pgclaim: pool %s could not reconnect for %.0fs", pool.name,
                        pool.reconnect_timeout, extra=log_extra(None, operation="reconnect"))

    def _schema_checked(self, installed: int) -> int:
        """Raises ``SchemaMismatch`` for an ``installed`` schema older than this client
        needs; else notes the check done and returns ``installed``."""
        required = required_schema_version()
        if installed < required:
            raise SchemaMismatch(installed, required, package_version())
        self._schema_unchecked = False
        return installed

    @property
    def pool(self) -> P | None:
        """The pool calls run on (``None`` for a client on a caller's connection)."""
        return self._pool

    def conninfo(self) -> tuple[str, dict[str, Any]] | None:
        """The DSN and connection settings of the pool, for a dedicated connection.

        ``None`` for a client on a caller's connection (or a pool built from callables).
        """
        pool = self._pool
        if pool is None or callable(pool.conninfo) or callable(pool.kwargs):
            return None
        kwargs = {k: v for k, v in (pool.kwargs or {}).items()
                  if k not in ("options", "prepare_threshold")}
        kwargs["autocommit"] = True
        return pool.conninfo, kwargs


def _execute(c: psycopg.Connection[Any], call: Call[T]) -> T:
    """Runs ``call`` on ``c``: its statement, or its statements in one pipeline."""
    statements = call.statements
    if len(statements) == 1:
        statement = statements[0]
        with c.cursor() as cur:
            decoders = _calls.prepare(cur, statement)
            cur.execute(statement.query, statement.params)
            rows = cur.fetchall() if cur.description else []
            return call.decode(_calls.rows_of(rows, statement, decoders))
    cursors = [c.cursor() for _ in statements]
    try:
        decoders_of = [_calls.prepare(cur, s) for cur, s in zip(cursors, statements)]
        # One Sync for all: the server runs them in one implicit transaction.
        with c.pipeline():
            for cur, s in zip(cursors, statements):
                cur.execute(s.query, s.params)
        return call.decode(*[
            _calls.rows_of(cur.fetchall() if cur.description else [], s, d)
            for cur, s, d in zip(cursors, statements, decoders_of)])
    finally:
        for cur in cursors:
            cur.close()


class QueueClient(ClientBase["ConnectionPool[Any]", psycopg.Connection[Any]]):
    """A thin client of the pgclaim SQL API over a DSN, a pool or a connection.

    * ``QueueClient(dsn)`` (or ``None``: ``DATABASE_URL``, then libpq's ``PG*`` variables)
      opens and owns a ``ConnectionPool`` of autocommit connections: each call is one
      statement in its own transaction, retried on transient failures by ``retry``.
    * ``QueueClient(pool)`` uses the caller's pool (and leaves it open on ``close``).
    * ``QueueClient(conn)`` runs every call on the caller's connection, inside whatever
      transaction the caller has open: nothing is committed and nothing is retried, the
      transaction is the caller's to commit or redo.

    Every method that takes ``conn=`` runs on that connection instead, in the same way: use it
    to enqueue inside the caller's own transaction.

    The first call checks once that the installed schema is recent enough for this client
    (``check_schema``); ``check_schema=False`` leaves that to the caller. A DSN libpq cannot
    parse raises ``InvalidArgument`` at once, with its password masked.
    """

    _pool_type = ConnectionPool
    _conn_type = psycopg.Connection

    def _new_pool(self, dsn: str, *, reconnect_delay_max: float, **settings: Any
                  ) -> ConnectionPool:
        pool = _Pool(dsn, open=False, check=self._check,
                     reconnect_failed=self._reconnect_failed, **settings)
        pool.reconnect_delay_max = reconnect_delay_max
        # Do not wait for the first connection: a client may start before its database.
        pool.open(wait=False)
        return pool

    # -- plumbing -------------------------------------------------------------------------

    def _check(self, conn: psycopg.Connection[Any]) -> None:
        """Pool ``check`` callback: probes a connection that sat idle ``check_idle_after``
        seconds or more (so a server restart costs no failed call), and lends one used
        a moment ago as it is, saving a round trip per call on a busy worker."""
        if self._idle_long(conn):
            ConnectionPool.check_connection(conn)

    def close(self) -> None:
        """Closes the pool this client owns (a caller's pool or connection is left open)."""
        if self._owns_pool and self._pool is not None:
            self._pool.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, call: Call[T], conn: psycopg.Connection[Any] | None = None) -> T:
        """Runs ``call`` with the retry rules of ``pgclaim.retry`` (and, unless the call says
        otherwise, the schema check of a client's first call)."""
        run = self.run if call.check else self._run
        return run(lambda c: _execute(c, call), operation=call.operation,
                   idempotent=call.idempotent, queue=call.queue, conn=conn)

    # -- queues ---------------------------------------------------------------------------

    def create_queue(
        self,
        queue: str,
        *,
        lease: Duration | None = None,
        max_attempts: int | None = None,
        backoff_base: Duration | None = None,
        backoff_max: Duration | None = None,
        retention: Duration | None = None,
        max_payload_bytes: int | None = None,
        max_lease: Duration | None = None,
        min_priority: int | None = None,
        max_priority: int | None = None,
        max_batch: int | None = None,
        max_running: int | None = None,
        rate: float | None = None,
        burst: int | None = None,
        fair: bool | None = None,
        dedup_window: Duration | None = None,
    ) -> None:
        """Creates a queue (idempotent: an existing queue keeps its settings).

        A setting left ``None`` takes ``pgclaim.create_queue``'s default (docs/sql.md); the
        limits (``max_payload_bytes``, ``max_lease``, ``min_priority``, ``max_priority``,
        ``max_batch``) are described in docs/security.md, flow control (``max_running``,
        ``rate``, ``burst``, ``fair``, ``dedup_window``) in docs/sql.md.
        """
        self._call(_calls.create_queue(queue, locals()))  # the settings are the parameters

    def alter_queue(
        self,
        queue: str,
        *,
        lease: Duration | None = None,
        max_attempts: int | None = None,
        backoff_base: Duration | None = None,
        backoff_max: Duration | None = None,
        retention: Duration | None = None,
        max_payload_bytes: int | None = None,
        max_lease: Duration | None = None,
        min_priority: int | None = None,
        max_priority: int | None = None,
        max_batch: int | None = None,
        max_running: int | None = None,
        rate: float | None = None,
        burst: int | None = None,
        fair: bool | None = None,
        dedup_window: Duration | None = None,
    ) -> None:
        """Changes the given settings of a queue (``None`` leaves a setting alone;
        ``max_running=0``, ``rate=0`` and ``dedup_window=0`` remove that limit)."""
        self._call(_calls.alter_queue(queue, locals()))  # the settings are the parameters

    def drop_queue(self, queue: str, *, force: bool = False) -> int:
        """Drops a queue and its records; returns how many records were deleted.

        Raises ``QueueNotEmpty`` when unfinished records remain and ``force`` is false.
        """
        return self._call(_calls.drop_queue(queue, force))

    def pause_queue(self, queue: str) -> None:
        """Pauses a queue: ``claim`` hands out nothing until ``resume_queue``."""
        self._call(_calls.pause_queue(queue))

    def resume_queue(self, queue: str) -> None:
        """Resumes a paused queue and wakes its workers."""
        self._call(_calls.resume_queue(queue))

    # -- producing ------------------------------------------------------------------------

    def enqueue(
        self,
        queue: str,
        payload: Any,
        *,
        priority: int = 0,
        run_at: datetime | None = None,
        dedup_key: str | None = None,
        max_attempts: int | None = None,
        conn: psycopg.Connection[Any] | None = None,
        group_key: str | None = None,
    ) -> int:
        """Adds one record and returns its id (the existing id for a live ``dedup_key``).

        With ``conn``, the record is added inside the caller's transaction on that connection:
        it exists exactly when the caller commits. Without a ``dedup_key`` a lost connection
        after sending raises ``OutcomeUnknown`` rather than risk adding the record twice.
        With ``group_key`` the record joins that FIFO group: the group's records run one at
        a time, in order (docs/sql.md).
        """
        return self._call(_calls.enqueue(queue, payload, priority, run_at, dedup_key,
                                         max_attempts, group_key), conn)

    def enqueue_items(
        self,
        queue: str,
        items: Sequence[Item],
        *,
        conn: psycopg.Connection[Any] | None = None,
    ) -> list[tuple[int, bool]]:
        """Adds one record per item in one call, each with its own options; returns
        ``(id, created)`` per item in input order (``created`` is false when the id is an
        existing record's, by ``dedup_key``)."""
        return self._call(_calls.enqueue_items(queue, items), conn)

    def next_eligible(self, queue: str) -> datetime | None:
        """When a claim of ``queue`` can next hand out a record (a record's due time, the
        rate limit's next token), or ``None`` when nothing is pending, the queue is paused
        or at its ``max_running``."""
        return self._call(_calls.next_eligible(queue))

    # -- periodic schedules -----------------------------------------------------------------

    def schedule(
        self,
        name: str,
        queue: str,
        payload: Any = None,
        *,
        cron: str | None = None,
        every: Duration | None = None,
        priority: int = 0,
        max_attempts: int | None = None,
        group_key: str | None = None,
        timezone: str = "UTC",
    ) -> datetime:
        """Creates or replaces the periodic schedule ``name``; returns its next slot.

        At every slot of ``cron`` (five fields, read in ``timezone``) or ``every`` (a
        duration, numbers are seconds; give exactly one of the two) one record with
        ``payload`` (default ``{}``), ``priority``, ``max_attempts`` and ``group_key`` goes
        into ``queue``. Claims enqueue due slots themselves; ``tick`` does it where nothing
        claims. Replacing a schedule with the same timing keeps its next slot. Needs
        ``pgclaim_admin``. Raises ``InvalidArgument`` (naming a bad cron field) and
        ``QueueNotFound``.
        """
        return self._call(_calls.schedule(name, queue, payload, cron, every, priority,
                                          max_attempts, group_key, timezone))

    def unschedule(self, name: str) -> bool:
        """Removes the periodic schedule ``name`` (its records stay); returns whether it
        existed. Needs ``pgclaim_admin``."""
        return self._call(_calls.unschedule(name))

    def schedules(self) -> list[Schedule]:
        """One ``Schedule`` per periodic schedule, by name. Needs ``pgclaim_admin``."""
        return self._call(_calls.schedules())

    def tick(self) -> int:
        """Enqueues the due slot of every periodic schedule (the latest one, once); returns
        how many records it added. For a process that does not claim: claims tick anyway."""
        return self._call(_calls.tick())

    def enqueue_many(
        self,
        queue: str,
        payloads: Sequence[Any],
        *,
        priority: int = 0,
        run_at: datetime | None = None,
        conn: psycopg.Connection[Any] | None = None,
    ) -> list[int]:
        """Adds one record per payload in one statement; returns the ids in input order."""
        return self._call(_calls.enqueue_many(queue, payloads, priority, run_at), conn)

    # -- consuming ------------------------------------------------------------------------

    def claim(
        self, queue: str, worker_id: str, batch_size: int = 100,
        lease: Duration | None = None,
    ) -> list[Claimed]:
        """Claims up to ``batch_size`` due records for ``worker_id`` under a lease.

        Not retried once sent: records of a claim whose answer was lost come back when their
        lease expires.
        """
        return self._call(_calls.claim(queue, worker_id, batch_size, lease))

    def complete_and_claim(
        self, worker_id: str, records: Sequence[Claimed], queue: str, batch_size: int = 100,
        lease: Duration | None = None,
    ) -> tuple[int, list[Claimed]]:
        """Completes ``records`` (as ``complete`` does, under their lease tokens) and claims up
        to ``batch_size`` more records of ``queue`` (as ``claim`` does) in one round trip and
        one transaction: returns how many it completed and the records claimed.

        Both take effect or neither: an error means nothing was completed or claimed, except
        ``OutcomeUnknown`` (the connection broke on the way: complete them again; the records
        claimed, if any, come back when their lease expires). Not retried once sent, as
        ``claim``. Half the round trips and commits of a worker's ``complete`` then ``claim``.
        """
        return self._call(_calls.complete_and_claim(worker_id, records, queue, batch_size,
                                                    lease))

    @overload
    def complete(
        self, worker_id: str, records: Sequence[Claimed], /, *, queue: str | None = None,
        conn: psycopg.Connection[Any] | None = None,
    ) -> int: ...

    @overload
    def complete(
        self, worker_id: str, ids: Sequence[int], lease_tokens: Sequence[int] | None = None,
        *, queue: str | None = None, conn: psycopg.Connection[Any] | None = None,
    ) -> int: ...

    def complete(
        self, worker_id: str, ids: Sequence[int] | Sequence[Claimed],
        lease_tokens: Sequence[int] | None = None, *, queue: str | None = None,
        conn: psycopg.Connection[Any] | None = None,
    ) -> int:
        """Completes the records among ``ids`` that ``worker_id`` holds; returns how many.

        Pass the ``Claimed`` records ``claim`` returned (their ids and lease tokens are used),
        or ids with ``lease_tokens`` (one per id), which fence each report to its claim. With
        ``conn``, the completion joins the caller's transaction (results and completion commit
        together).
        """
        return self._call(_calls.complete(worker_id, ids, lease_tokens, queue), conn)

    def fail(
        self, worker_id: str, id: int | Claimed, error: str, *,
        retry_after: Duration | None = None, lease_token: int | None = None,
        fatal: bool = False, queue: str | None = None,
    ) -> str:
        """Reports a failed attempt; returns the new status ('pending' or 'failed').

        ``id`` is a record id (with its ``lease_token``), or the ``Claimed`` record itself.
        Raises ``RecordNotFound`` or ``NotHolder`` (the lease was taken back).
        """
        return self._call(_calls.fail(worker_id, id, error, retry_after, lease_token, fatal,
                                      queue))

    def fail_batch(
        self, worker_id: str, records: Sequence[Claimed], errors: Sequence[str], *,
        retry_after: Sequence[Duration | None] | None = None,
        fatal: Sequence[bool] | None = None, queue: str | None = None,
    ) -> dict[int, str]:
        """Reports failed attempts of many held records in one call (``pgclaim.fail_batch``).

        ``errors``, and ``retry_after`` and ``fatal`` when given, hold one element per record
        (a ``None`` retry_after takes the queue's backoff). Records this worker no longer
        holds under their lease token are skipped. Returns the new status ('pending' or
        'failed') of each record it changed, by id. Retried on transient failures: a record
        already reported is no longer held, so a retry cannot report it twice.
        """
        return self._call(_calls.fail_batch(worker_id, records, errors, retry_after, fatal,
                                            queue))

    @overload
    def extend_lease(
        self, worker_id: str, records: Sequence[Claimed], /, lease: Duration | None = None,
        *, queue: str | None = None,
    ) -> int: ...

    @overload
    def extend_lease(
        self, worker_id: str, ids: Sequence[int], lease: Duration | None = None,
        lease_tokens: Sequence[int] | None = None, *, queue: str | None = None,
    ) -> int: ...

    def extend_lease(
        self, worker_id: str, ids: Sequence[int] | Sequence[Claimed],
        lease: Duration | None = None, lease_tokens: Sequence[int] | None = None, *,
        queue: str | None = None,
    ) -> int:
        """Extends the leases of the records among ``ids`` that ``worker_id`` holds (by
        ``lease``, default: the length each was claimed with); returns how many.

        ``ids`` are the ``Claimed`` records ``claim`` returned, or ids with ``lease_tokens``.
        """
        return self._call(_calls.extend_lease(worker_id, ids, lease, lease_tokens, queue))

    @overload
    def release(
        self, worker_id: str, records: Sequence[Claimed], /, *, queue: str | None = None,
    ) -> int: ...

    @overload
    def release(
        self, worker_id: str, ids: Sequence[int], lease_tokens: Sequence[int] | None = None,
        *, queue: str | None = None,
    ) -> int: ...

    def release(
        self, worker_id: str, ids: Sequence[int] | Sequence[Claimed],
        lease_tokens: Sequence[int] | None = None, *, queue: str | None = None,
    ) -> int:
        """Gives back held records unprocessed (attempt not counted); returns how many.

        ``ids`` are the ``Claimed`` records ``claim`` returned, or ids with ``lease_tokens``.
        """
        return self._call(_calls.release(worker_id, ids, lease_tokens, queue))

    # -- workers --------------------------------------------------------------------------

    def register_worker(self, worker_id: str, info: dict[str, Any] | None = None) -> None:
        """Registers ``worker_id`` (or refreshes it) with free-form ``info``."""
        self._call(_calls.register_worker(worker_id, info))

    def heartbeat(self, worker_id: str, ids: Sequence[int] | None = None, *,
                  queue: str | None = None) -> int:
        """Marks ``worker_id`` alive and extends the leases it holds (only those among
        ``ids`` when given, as a worker loop does for the records it is working on);
        returns how many."""
        return self._call(_calls.heartbeat(worker_id, ids, queue))

    def deregister_worker(self, worker_id: str, *, queue: str | None = None) -> int:
        """Releases every record ``worker_id`` holds and forgets it; returns how many."""
        return self._call(_calls.deregister_worker(worker_id, queue))

    # -- operations -----------------------------------------------------------------------

    def reclaim_orphans(self, max_records: int = 10000, *, queue: str | None = None) -> int:
        """Takes back records with an expired lease or a dead worker; returns how many."""
        return self._call(_calls.reclaim_orphans(max_records, queue))

    def retry_failed(
        self, queue: str, ids: Sequence[int] | None = None, *, error_like: str | None = None,
        finished_after: datetime | None = None, finished_before: datetime | None = None,
        min_attempt: int | None = None,
    ) -> int:
        """Puts failed records of ``queue`` back to pending: all, or those every filter given
        picks (among ``ids``, ``last_error LIKE error_like``, finished in
        [``finished_after``, ``finished_before``), failed on ``min_attempt`` or later);
        returns how many."""
        return self._call(_calls.retry_failed(queue, ids, error_like, finished_after,
                                              finished_before, min_attempt))

    def cancel(
        self, ids: Sequence[int] | None = None, *, queue: str | None = None,
        error_like: str | None = None, min_attempt: int | None = None,
    ) -> int:
        """Cancels the pending or running records among ``ids``, or those of ``queue`` the
        filters pick (``last_error LIKE error_like``, ``attempt >= min_attempt``); returns
        how many."""
        return self._call(_calls.cancel(ids, queue, error_like, min_attempt))

    def holds(
        self, id: int, lease_token: int, *, conn: psycopg.Connection[Any] | None = None,
    ) -> bool:
        """Whether the claim of record ``id`` under ``lease_token`` is still live.

        A true answer also keeps the record from being taken back until the transaction
        ends: with ``conn``, writes made afterwards in the caller's transaction on that
        connection commit only while the claim holds (``pgclaim.holds``).
        """
        return self._call(_calls.holds(id, lease_token), conn)

    def run_sql_handler(
        self, queue: str, handler: str, max_records: int = 100,
        time_budget: Duration = timedelta(seconds=10),
        *, conn: psycopg.Connection[Any] | None = None,
    ) -> list[tuple[int, str, str | None]]:
        """Runs ``pgclaim.run``: the SQL procedure ``handler`` (a signature such as
        ``"app.send(pgclaim.claimed)"``) handles up to ``max_records`` records of ``queue``
        inside the database, each completed or failed with its effects in one transaction.
        Returns ``(id, status, error)`` per record handled. Not retried: a lost connection
        raises ``OutcomeUnknown`` (the run then either committed or left everything as it
        was)."""
        return self._call(_calls.run_sql_handler(queue, handler, max_records, time_budget),
                          conn)

    def latency(self, queue: str, since: Duration = timedelta(minutes=5)) -> dict[str, Latency]:
        """Wait (enqueue to first claim) and run (last claim to finish) times of the records
        of ``queue`` that finished in the last ``since``, keyed ``"wait"`` and ``"run"``."""
        return self._call(_calls.latency(queue, since))

    def purge(
        self, queue: str, older_than: Duration | None = None, max_records: int = 100000,
    ) -> int:
        """Deletes finished records older than ``older_than`` (default: the retention)."""
        return self._call(_calls.purge(queue, older_than, max_records))

    def configure(
        self, *, worker_timeout: Duration | None = None, sweep_limit: int | None = None,
        max_ids: int | None = None, max_error_bytes: int | None = None,
        max_info_bytes: int | None = None, purge_limit: int | None = None,
    ) -> None:
        """Sets the cluster-wide settings given (``None``: unchanged): ``worker_timeout``,
        ``sweep_limit``, the limits ``max_ids``, ``max_error_bytes``, ``max_info_bytes``, and
        ``purge_limit`` (finished records past retention each ``reclaim_orphans`` deletes;
        0 turns that off)."""
        self._call(_calls.configure(worker_timeout, sweep_limit, max_ids, max_error_bytes,
                                    max_info_bytes, purge_limit))

    def grant_queue(self, queue: str, role: str, privileges: Sequence[str]) -> list[str]:
        """Grants ``role`` the ``privileges`` ('enqueue', 'claim', 'read') on ``queue``, which
        restricts the queue to its granted roles and pgclaim_admin; returns the role's
        privileges on it (docs/security.md)."""
        return self._call(_calls.grant_queue(queue, role, privileges))

    def revoke_queue(self, queue: str, role: str, privileges: Sequence[str]) -> list[str]:
        """Revokes ``privileges`` that ``grant_queue`` gave ``role`` on ``queue`` (without grants
        left the queue is open again); returns the role's privileges on it."""
        return self._call(_calls.revoke_queue(queue, role, privileges))

    def stats(self) -> list[QueueStats]:
        """One ``QueueStats`` per queue, in queue order."""
        return self._call(_calls.stats())

    def workers(self) -> list[WorkerStatus]:
        """One ``WorkerStatus`` per registered worker."""
        return self._call(_calls.workers())

    def metrics(self) -> list[Metric]:
        """The rows of ``pgclaim.metrics()``: per queue the caller may read, records by
        status, the oldest pending age and the ever-growing counters; workers alive and dead.
        Reads no finished record (docs/monitoring.md)."""
        return self._call(_calls.metrics())

    def dead_letters(self, queue: str | None = None, max_records: int = 20) -> list[DeadLetter]:
        """The newest dead letters of ``queue`` (of every readable queue when ``None``),
        newest first, with their last error and no payload."""
        return self._call(_calls.dead_letters(queue, max_records))

    def stuck_records(self, max_records: int = 100) -> list[StuckRecord]:
        """At most ``max_records`` rows of ``pgclaim.stuck_records``, longest stuck first."""
        return self._call(_calls.stuck_records(max_records))

    def health(
        self, max_xact_age: Duration = timedelta(minutes=5),
        max_pending_age: Duration = timedelta(hours=1),
    ) -> dict[str, Any]:
        """The ``pgclaim.health()`` document (``status`` is ok, degraded or failing)."""
        return self._call(_calls.health(max_xact_age, max_pending_age))

    def schema_version(self) -> int:
        """The version of the installed pgclaim schema (the number of its newest migration)."""
        return self._call(_calls.schema_version())

    def check_schema(self) -> int:
        """Checks that the installed schema is at least the version this client needs (the
        newest migration it ships); returns the installed version.

        Raises ``SchemaMismatch`` for an older schema (run ``pgclaim migrate``) and
        ``SchemaMissing`` when there is none; a newer schema is accepted. The first call of a
        client runs this once (unless built with ``check_schema=False``); calling it checks
        again whatever that option says.
        """
        return self._schema_checked(self.schema_version())

    def run(self, fn: Callable[[psycopg.Connection[Any]], T], *, operation: str = "query",
            idempotent: bool = False, queue: str | None = None,
            conn: psycopg.Connection[Any] | None = None) -> T:
        """Runs ``fn`` on a connection of the client, with the same retry rules as every call.

        On ``conn`` (or the caller's connection the client was built on) it runs once, inside
        the caller's transaction, and is never retried. Every method of the client goes through
        here; use it for read-only checks and tooling (``fn`` receives the connection). The
        client's first call checks the schema version first (``check_schema``).
        """
        if self._schema_unchecked:
            self.check_schema()
        return self._run(fn, operation=operation, idempotent=idempotent, queue=queue, conn=conn)

    def _run(self, fn: Callable[[psycopg.Connection[Any]], T], *, operation: str,
             idempotent: bool, queue: str | None,
             conn: psycopg.Connection[Any] | None) -> T:
        """``run`` without the schema check."""
        own = conn if conn is not None else self._conn
        if own is not None:
            try:
                return fn(own)
            except psycopg.Error as exc:
                raise translate(exc) from exc
        pool = self._pool
        assert pool is not None

        def once(attempt: Attempt) -> T:
            with pool.connection() as c:
                attempt.sent = True
                try:
                    return fn(c)
                finally:
                    self._returned(c)

        return call_with_retry(once, policy=self.retry, operation=operation,
                               idempotent=idempotent, queue=queue, log=self._log)


__all__ = [
    "MAX_BATCH_SIZE", "Claimed", "DeadLetter", "Duration", "Item", "Latency", "Metric",
    "QueueClient", "QueueStats", "Schedule", "StuckRecord", "WorkerStatus", "as_interval",
    "default_dsn",
]
