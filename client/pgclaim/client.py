"""QueueClient: one method per pgclaim SQL function, each one SQL call."""
from __future__ import annotations

import json
import logging
import os
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any, NotRequired, Self, TypedDict, TypeVar, cast, overload

import psycopg
from psycopg import abc, sql
from psycopg.adapt import Dumper
from psycopg.pq import Format
from psycopg.types.json import Jsonb, JsonbLoader
from psycopg.types.string import TextLoader
from psycopg_pool import ConnectionPool
from psycopg_pool.base import AttemptWithBackoff

from . import _dsn, _sql
from ._version import package_version, required_schema_version
from .errors import SchemaMismatch, translate
from .instance import application_name, instance_id
from .retry import NO_RETRY, Attempt, RetryPolicy, call_with_retry, log_extra
from .retry import logger as _default_logger


class Item(TypedDict):
    """One record of ``QueueClient.enqueue_items``: its payload and, optionally, its own
    ``priority``, ``run_at``, ``dedup_key``, ``group_key`` and ``max_attempts`` (left out or
    ``None``: as ``enqueue`` defaults them)."""

    payload: Any
    priority: NotRequired[int | None]
    run_at: NotRequired[datetime | None]
    dedup_key: NotRequired[str | None]
    group_key: NotRequired[str | None]
    max_attempts: NotRequired[int | None]


T = TypeVar("T")
Duration = timedelta | float | int
"""A length of time: a ``timedelta`` or a number of seconds."""

#: the most records one ``claim`` may ask for: ``pgclaim.claim_batch`` raises 22023 above it
#: (a test checks the two agree); ``Worker`` checks its ``batch_size`` against it up front
MAX_BATCH_SIZE = 10_000


@dataclass(frozen=True)
class Claimed:
    """A record handed to a worker by ``claim``; ``lease_token`` fences its reports.

    In a record ``claim`` returned, ``payload``, ``enqueued_at``, ``run_at`` and
    ``lease_until`` are decoded on first access (once each; a handler that does not read
    them costs no decoding), with the loaders the connection is configured with: the
    values are those psycopg would have returned.
    """

    id: int
    queue: str
    payload: Any
    attempt: int
    max_attempts: int
    priority: int
    enqueued_at: datetime
    run_at: datetime
    lease_until: datetime
    lease_token: int

    def __getstate__(self) -> dict[str, Any]:
        """The fields, decoded (so that a copy or a pickle carries the values)."""
        return {name: getattr(self, name) for name in _FIELDS}


_FIELDS = tuple(f.name for f in fields(Claimed))
_DECODERS = "_decoders"
"""Key, in the ``__dict__`` of a record ``claim`` returned, of the functions that decode its
lazy fields (payload, then the three times) from their text."""


class _Lazy:
    """A field of ``Claimed`` decoded on first access: ``claim`` keeps its text under
    ``_raw_<name>`` in the record's ``__dict__``; the value, once decoded, goes to
    ``__dict__[name]``, where later accesses find it first (a non-data descriptor, like
    ``functools.cached_property``). Records built with ``Claimed(...)`` have every value in
    ``__dict__`` from the start."""

    def __init__(self, name: str, index: int) -> None:
        self.name = name
        self.raw = "_raw_" + name
        self.index = index

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        d = obj.__dict__
        try:
            return d[self.name]
        except KeyError:
            pass
        text = d.get(self.raw)
        if text is None:  # decoded meanwhile by another thread
            return d[self.name]
        value = d[self.name] = d[_DECODERS][self.index](text)
        d.pop(self.raw, None)
        return value


_LAZY = ("payload", "enqueued_at", "run_at", "lease_until")
for _index, _name in enumerate(_LAZY):
    setattr(Claimed, _name, _Lazy(_name, _index))  # after @dataclass: not defaults


def _claimed(rows: list[tuple[Any, ...]], queue: str,
             decoders: tuple[Callable[[str], Any], ...]) -> list[Claimed]:
    """``Claimed`` records from rows of ``_sql.CLAIM`` (payload and times as text, decoded
    on first access by ``decoders``). Built without ``__init__``, which sets each field
    through ``object.__setattr__``: six times faster."""
    new = object.__new__
    out = []
    for row in rows:
        record = new(Claimed)
        d = record.__dict__
        (d["id"], payload, d["attempt"], d["max_attempts"], d["priority"], enqueued_at,
         run_at, lease_until, d["lease_token"]) = row
        d["queue"] = queue
        d[_DECODERS] = decoders
        for name, text in (("payload", payload), ("enqueued_at", enqueued_at),
                           ("run_at", run_at), ("lease_until", lease_until)):
            if text is None:
                d[name] = None
            else:
                d["_raw_" + name] = text
        out.append(record)
    return out


def _lazy_loaders(cur: psycopg.Cursor[Any]) -> tuple[Callable[[str], Any], ...]:
    """Makes ``cur`` return jsonb and timestamptz values as text; returns the functions that
    decode such a text as the loaders configured for ``cur`` would have (payload first, then
    the three times)."""
    adapters = cur.adapters
    json_cls = adapters.get_loader(_JSONB_OID, Format.TEXT)
    if json_cls is not None and issubclass(json_cls, JsonbLoader):
        loads: Callable[[Any], Any] = json_cls(_JSONB_OID, cur).loads
        payload = loads if loads is json.loads else _encoded(loads)
    else:
        payload = _loaded_by(json_cls, _JSONB_OID, cur)
    time_ = _loaded_by(adapters.get_loader(_TIMESTAMPTZ_OID, Format.TEXT), _TIMESTAMPTZ_OID, cur)
    adapters.register_loader(_JSONB_OID, TextLoader)
    adapters.register_loader(_TIMESTAMPTZ_OID, TextLoader)
    return payload, time_, time_, time_


def _encoded(fn: Callable[[bytes], Any]) -> Callable[[str], Any]:
    return lambda text: fn(text.encode())


def _loaded_by(cls: type[abc.Loader] | None, oid: int, cur: psycopg.Cursor[Any]
               ) -> Callable[[str], Any]:
    """Decodes a text as a loader of class ``cls`` does (as text when there is none)."""
    if cls is None:
        return str
    return _encoded(cls(oid, cur).load)


_JSONB_OID = psycopg.postgres.types["jsonb"].oid
_TIMESTAMPTZ_OID = psycopg.postgres.types["timestamptz"].oid


class _Int8Array(str):
    """A ``bigint[]`` parameter given as its text literal (``{1,2,3}``): psycopg dumps a
    list element by element in Python, a literal costs one ``str.join``."""


class _Int8ArrayDumper(Dumper):
    oid = psycopg.postgres.types["int8"].array_oid

    def dump(self, obj: Any) -> bytes:
        return obj.encode()  # type: ignore[no-any-return]


psycopg.adapters.register_dumper(_Int8Array, _Int8ArrayDumper)


def _bigints(values: Sequence[Any] | None) -> list[Any] | _Int8Array | None:
    """A ``bigint[]`` parameter: a text literal when every value is an ``int``, else the
    values as a list (psycopg dumps them, and the server reports what is wrong)."""
    if values is None:
        return None
    if type(values) is not list:
        values = list(values)
    if _all_ints(values):
        return _Int8Array("{" + ",".join(map(str, values)) + "}")
    return values


@dataclass(frozen=True)
class Latency:
    """One measure of ``QueueClient.latency``: how many records, percentiles and max
    (``None`` when none finished), the sum in seconds, and cumulative histogram
    ``buckets``: ``(le, count)`` pairs, ``count`` records at most ``le`` seconds, the
    last ``le`` infinite."""

    records: int
    p50: timedelta | None
    p95: timedelta | None
    p99: timedelta | None
    max: timedelta | None
    sum_seconds: float
    buckets: list[tuple[float, int]]


def _fencing(
    ids: Sequence[int] | Sequence[Claimed], lease_tokens: Sequence[int] | None,
) -> tuple[list[int], list[int] | None]:
    """The ids and lease tokens of a report: taken from ``Claimed`` records, or given apart."""
    items: list[Any] = ids if type(ids) is list else list(ids)
    if _all_ints(items):  # ids, as a worker's reports pass them
        return items, None if lease_tokens is None else list(lease_tokens)
    records = [item for item in items if isinstance(item, Claimed)]
    if not records:
        return items, None if lease_tokens is None else list(lease_tokens)
    if len(records) != len(items):
        raise TypeError("pgclaim: pass Claimed records or ids, not a mix of both")
    if lease_tokens is not None:
        raise TypeError("pgclaim: Claimed records carry their lease tokens: "
                        "do not pass lease_tokens with them")
    return [r.id for r in records], [r.lease_token for r in records]


_INT = frozenset({int})


def _all_ints(values: list[Any]) -> bool:
    """Whether every value is exactly an ``int`` (a C-speed pass: no generator)."""
    return set(map(type, values)) <= _INT


def _claim_params(queue: str, worker_id: str, batch_size: int, lease: Duration | None
                  ) -> dict[str, Any]:
    return {"queue": queue, "worker_id": worker_id, "batch_size": batch_size,
            "lease": as_interval(lease)}


def _queue_of(ids: Sequence[int] | Sequence[Claimed], queue: str | None) -> str | None:
    """The queue to name in log records: the one given, else that of the first record."""
    if queue is None and ids and isinstance(ids[0], Claimed):
        return ids[0].queue
    return queue


@dataclass(frozen=True)
class QueueStats:
    """One row of ``pgclaim.queue_stats``."""

    queue: str
    paused: bool
    pending: int
    scheduled: int
    running: int
    completed: int
    failed: int
    cancelled: int
    oldest_pending_age: timedelta | None
    completed_last_minute: int


@dataclass(frozen=True)
class WorkerStatus:
    """One row of ``pgclaim.worker_status``."""

    worker_id: str
    info: Any
    started_at: datetime
    last_seen: datetime
    silent_for: timedelta
    alive: bool
    held: int


@dataclass(frozen=True)
class Metric:
    """One row of ``pgclaim.metrics()``: a value named as the exporter shows it (without its
    ``pgclaim_`` prefix), for a queue (``None``: the whole database) and a status."""

    metric: str
    queue: str | None
    status: str | None
    value: float


@dataclass(frozen=True)
class DeadLetter:
    """One row of ``pgclaim.dead_letters()``: a failed record kept, with its last error."""

    id: int
    queue: str
    attempt: int
    max_attempts: int
    worker_id: str | None
    enqueued_at: datetime
    finished_at: datetime
    last_error: str | None


@dataclass(frozen=True)
class StuckRecord:
    """One row of ``pgclaim.stuck_records``."""

    id: int
    queue: str
    worker_id: str | None
    attempt: int
    max_attempts: int
    lease_until: datetime | None
    reason: str
    stuck_for: timedelta


@dataclass(frozen=True)
class Schedule:
    """One row of ``pgclaim.schedule_status``: a periodic schedule, the slot it last
    enqueued (and that record's id) and its next slot."""

    name: str
    queue: str
    cron: str | None
    every: timedelta | None
    timezone: str
    payload: Any
    priority: int
    max_attempts: int | None
    group_key: str | None
    last_slot: datetime | None
    last_id: int | None
    next_slot: datetime
    created_at: datetime


def default_dsn() -> str:
    """The DSN to use when none is given: ``DATABASE_URL``, else ``""``.

    An empty DSN lets libpq read its ``PG*`` variables (``PGHOST``, ``PGDATABASE``, ...).
    """
    return os.environ.get("DATABASE_URL", "")


def as_interval(value: Duration | None) -> timedelta | None:
    """``value`` as a ``timedelta`` (numbers are seconds); ``None`` stays ``None``."""
    if value is None or isinstance(value, timedelta):
        return value
    return timedelta(seconds=float(value))


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


class QueueClient:
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

    def __init__(
        self,
        dsn_or_pool: str | ConnectionPool | psycopg.Connection[Any] | None = None,
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
        self._conn: psycopg.Connection[Any] | None = None
        self._pool: ConnectionPool | None = None
        self._owns_pool = False
        self.retry = retry or RetryPolicy()
        self.check_idle_after = check_idle_after
        self._idle_since: weakref.WeakKeyDictionary[psycopg.Connection[Any], float] = (
            weakref.WeakKeyDictionary())
        if isinstance(dsn_or_pool, ConnectionPool):
            self._pool = dsn_or_pool
        elif isinstance(dsn_or_pool, psycopg.Connection):
            self._conn = dsn_or_pool
            self.retry = NO_RETRY
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
            pool = _Pool(
                self.dsn, kwargs=kwargs, min_size=min_size, max_size=max_size, open=False,
                check=self._check, timeout=pool_timeout,
                reconnect_timeout=reconnect_timeout, reconnect_failed=self._reconnect_failed,
                name=f"pgclaim-{self.instance_id}",
            )
            pool.reconnect_delay_max = reconnect_delay_max
            self._pool = pool
            # Do not wait for the first connection: a client may start before its database.
            self._pool.open(wait=False)
            self._owns_pool = True

    # -- plumbing -------------------------------------------------------------------------

    def _check(self, conn: psycopg.Connection[Any]) -> None:
        """Pool ``check`` callback: probes a connection that sat idle ``check_idle_after``
        seconds or more (so a server restart costs no failed call), and lends one used
        a moment ago as it is, saving a round trip per call on a busy worker."""
        since = self._idle_since.get(conn)
        if since is not None and time.monotonic() - since < self.check_idle_after:
            return
        ConnectionPool.check_connection(conn)

    def _reconnect_failed(self, pool: ConnectionPool) -> None:
        self._log.error("pgclaim: pool %s could not reconnect for %.0fs", pool.name,
                        pool.reconnect_timeout, extra=log_extra(None, operation="reconnect"))

    def close(self) -> None:
        """Closes the pool this client owns (a caller's pool or connection is left open)."""
        if self._owns_pool and self._pool is not None:
            self._pool.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def pool(self) -> ConnectionPool | None:
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

    def _call(
        self,
        operation: str,
        query: str | sql.Composed,
        params: dict[str, Any],
        *,
        idempotent: bool,
        queue: str | None = None,
        conn: psycopg.Connection[Any] | None = None,
        check: bool = True,
    ) -> list[tuple[Any, ...]]:
        """Runs one statement and returns its rows, with the retry rules of ``pgclaim.retry``
        (and, unless ``check`` is false, the schema check of a client's first call)."""

        def statement(c: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
            with c.cursor() as cur:
                cur.execute(query, params)
                return cur.fetchall() if cur.description else []

        run = self.run if check else self._run
        return run(statement, operation=operation, idempotent=idempotent, queue=queue,
                   conn=conn)

    def _scalar(self, operation: str, query: str | sql.Composed, params: dict[str, Any],
                **kw: Any) -> Any:
        return self._call(operation, query, params, **kw)[0][0]

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
        self._queue_call("create_queue", _sql.create_queue, queue, {
            "lease": lease, "max_attempts": max_attempts, "backoff_base": backoff_base,
            "backoff_max": backoff_max, "retention": retention,
            "max_payload_bytes": max_payload_bytes, "max_lease": max_lease,
            "min_priority": min_priority, "max_priority": max_priority, "max_batch": max_batch,
            "max_running": max_running, "rate": rate, "burst": burst, "fair": fair,
            "dedup_window": dedup_window})

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
        self._queue_call("alter_queue", _sql.alter_queue, queue, {
            "lease": lease, "max_attempts": max_attempts, "backoff_base": backoff_base,
            "backoff_max": backoff_max, "retention": retention,
            "max_payload_bytes": max_payload_bytes, "max_lease": max_lease,
            "min_priority": min_priority, "max_priority": max_priority, "max_batch": max_batch,
            "max_running": max_running, "rate": rate, "burst": burst, "fair": fair,
            "dedup_window": dedup_window})

    def _queue_call(self, operation: str, statement: Callable[[list[str]], sql.Composed],
                    queue: str, settings: dict[str, Any]) -> None:
        """Calls ``create_queue`` or ``alter_queue`` naming only the settings given."""
        given = {name: as_interval(value) if _sql.QUEUE_SETTINGS[name] == "interval" else value
                 for name, value in settings.items() if value is not None}
        self._call(operation, statement(list(given)), {"queue": queue, **given},
                   idempotent=True, queue=queue)

    def drop_queue(self, queue: str, *, force: bool = False) -> int:
        """Drops a queue and its records; returns how many records were deleted.

        Raises ``QueueNotEmpty`` when unfinished records remain and ``force`` is false.
        """
        return int(self._scalar("drop_queue", _sql.DROP_QUEUE, {"queue": queue, "force": force},
                                idempotent=False, queue=queue))

    def pause_queue(self, queue: str) -> None:
        """Pauses a queue: ``claim`` hands out nothing until ``resume_queue``."""
        self._call("pause_queue", _sql.PAUSE_QUEUE, {"queue": queue}, idempotent=True,
                   queue=queue)

    def resume_queue(self, queue: str) -> None:
        """Resumes a paused queue and wakes its workers."""
        self._call("resume_queue", _sql.RESUME_QUEUE, {"queue": queue}, idempotent=True,
                   queue=queue)

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
        return int(self._scalar("enqueue", _sql.ENQUEUE, {
            "queue": queue, "payload": Jsonb(payload), "priority": priority, "run_at": run_at,
            "dedup_key": dedup_key, "max_attempts": max_attempts, "group_key": group_key},
            idempotent=dedup_key is not None, queue=queue, conn=conn))

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
        payload = [{k: (v.isoformat() if isinstance(v, datetime) else v)
                    for k, v in item.items() if v is not None} for item in items]
        rows = self._call("enqueue_items", _sql.ENQUEUE_ITEMS, {
            "queue": queue, "items": Jsonb(payload)},
            idempotent=all(i.get("dedup_key") is not None for i in items), queue=queue,
            conn=conn)
        return [(int(r[0]), bool(r[1])) for r in rows]

    def next_eligible(self, queue: str) -> datetime | None:
        """When a claim of ``queue`` can next hand out a record (a record's due time, the
        rate limit's next token), or ``None`` when nothing is pending, the queue is paused
        or at its ``max_running``."""
        value = self._scalar("next_eligible", _sql.NEXT_ELIGIBLE, {"queue": queue},
                             idempotent=True, queue=queue)
        return value if value is None else cast(datetime, value)

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
        value = self._scalar("schedule", _sql.SCHEDULE, {
            "name": name, "queue": queue, "payload": Jsonb({} if payload is None else payload),
            "cron": cron, "every": as_interval(every), "priority": priority,
            "max_attempts": max_attempts, "group_key": group_key, "timezone": timezone,
        }, idempotent=True, queue=queue)
        return cast(datetime, value)

    def unschedule(self, name: str) -> bool:
        """Removes the periodic schedule ``name`` (its records stay); returns whether it
        existed. Needs ``pgclaim_admin``."""
        return bool(self._scalar("unschedule", _sql.UNSCHEDULE, {"name": name},
                                 idempotent=True))

    def schedules(self) -> list[Schedule]:
        """One ``Schedule`` per periodic schedule, by name. Needs ``pgclaim_admin``."""
        return [Schedule(*r) for r in self._call("schedules", _sql.SCHEDULES, {},
                                                 idempotent=True)]

    def tick(self) -> int:
        """Enqueues the due slot of every periodic schedule (the latest one, once); returns
        how many records it added. For a process that does not claim: claims tick anyway."""
        return int(self._scalar("tick", _sql.TICK, {}, idempotent=True))

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
        rows = self._call("enqueue_many", _sql.ENQUEUE_BATCH, {
            "queue": queue, "payloads": [Jsonb(p) for p in payloads], "priority": priority,
            "run_at": run_at}, idempotent=False, queue=queue, conn=conn)
        return [int(r[0]) for r in rows]

    # -- consuming ------------------------------------------------------------------------

    def claim(
        self, queue: str, worker_id: str, batch_size: int = 100,
        lease: Duration | None = None,
    ) -> list[Claimed]:
        """Claims up to ``batch_size`` due records for ``worker_id`` under a lease.

        Not retried once sent: records of a claim whose answer was lost come back when their
        lease expires.
        """
        params = _claim_params(queue, worker_id, batch_size, lease)

        def statement(c: psycopg.Connection[Any]) -> list[Claimed]:
            with c.cursor() as cur:
                decoders = _lazy_loaders(cur)
                cur.execute(_sql.CLAIM, params)
                return _claimed(cur.fetchall(), queue, decoders)

        return self.run(statement, operation="claim", idempotent=False, queue=queue)

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
        ids, tokens = _fencing(records, None)
        done_params = {"worker_id": worker_id, "ids": _bigints(ids),
                       "lease_tokens": _bigints(tokens)}
        params = _claim_params(queue, worker_id, batch_size, lease)

        def statement(c: psycopg.Connection[Any]) -> tuple[int, list[Claimed]]:
            with c.cursor() as done, c.cursor() as cur:
                decoders = _lazy_loaders(cur)
                # One Sync for both: the server runs them in one implicit transaction.
                with c.pipeline():
                    done.execute(_sql.COMPLETE, done_params)
                    cur.execute(_sql.CLAIM, params)
                row = done.fetchone()
                assert row is not None
                return int(row[0]), _claimed(cur.fetchall(), queue, decoders)

        return self.run(statement, operation="complete_and_claim", idempotent=False,
                        queue=queue)

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
        id_list, tokens = _fencing(ids, lease_tokens)
        return int(self._scalar("complete", _sql.COMPLETE, {
            "worker_id": worker_id, "ids": _bigints(id_list), "lease_tokens": _bigints(tokens)},
            idempotent=True, queue=_queue_of(ids, queue), conn=conn))

    def fail(
        self, worker_id: str, id: int | Claimed, error: str, *,
        retry_after: Duration | None = None, lease_token: int | None = None,
        fatal: bool = False, queue: str | None = None,
    ) -> str:
        """Reports a failed attempt; returns the new status ('pending' or 'failed').

        ``id`` is a record id (with its ``lease_token``), or the ``Claimed`` record itself.
        Raises ``RecordNotFound`` or ``NotHolder`` (the lease was taken back).
        """
        record_id = id
        if isinstance(id, Claimed):
            if lease_token is not None and lease_token != id.lease_token:
                raise TypeError("pgclaim: a Claimed record carries its lease token: "
                                "do not pass another lease_token with it")
            record_id, lease_token, queue = id.id, id.lease_token, queue or id.queue
        return str(self._scalar("fail", _sql.FAIL, {
            "worker_id": worker_id, "id": record_id, "error": error,
            "retry_after": as_interval(retry_after),
            "lease_token": lease_token, "fatal": fatal}, idempotent=False, queue=queue))

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
        n = len(records)
        if len(errors) != n or (retry_after is not None and len(retry_after) != n) or (
                fatal is not None and len(fatal) != n):
            raise ValueError("pgclaim: fail_batch takes one error (and retry_after, fatal) "
                             "per record")
        rows = self._call("fail_batch", _sql.FAIL_BATCH, {
            "worker_id": worker_id, "ids": _bigints([r.id for r in records]),
            "errors": list(errors), "lease_tokens": _bigints([r.lease_token for r in records]),
            "retry_after": None if retry_after is None else [as_interval(a) for a in retry_after],
            "fatal": None if fatal is None else list(fatal)},
            idempotent=True, queue=queue)
        return {int(i): str(s) for i, s in rows}

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
        id_list, tokens = _fencing(ids, lease_tokens)
        return int(self._scalar("extend_lease", _sql.EXTEND_LEASE, {
            "worker_id": worker_id, "ids": _bigints(id_list), "lease": as_interval(lease),
            "lease_tokens": _bigints(tokens)}, idempotent=True, queue=_queue_of(ids, queue)))

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
        id_list, tokens = _fencing(ids, lease_tokens)
        return int(self._scalar("release", _sql.RELEASE, {
            "worker_id": worker_id, "ids": _bigints(id_list), "lease_tokens": _bigints(tokens)},
            idempotent=True, queue=_queue_of(ids, queue)))

    # -- workers --------------------------------------------------------------------------

    def register_worker(self, worker_id: str, info: dict[str, Any] | None = None) -> None:
        """Registers ``worker_id`` (or refreshes it) with free-form ``info``."""
        self._call("register_worker", _sql.REGISTER_WORKER, {
            "worker_id": worker_id, "info": Jsonb(info or {})}, idempotent=True)

    def heartbeat(self, worker_id: str, ids: Sequence[int] | None = None, *,
                  queue: str | None = None) -> int:
        """Marks ``worker_id`` alive and extends the leases it holds (only those among
        ``ids`` when given, as a worker loop does for the records it is working on);
        returns how many."""
        return int(self._scalar(
            "heartbeat", _sql.HEARTBEAT,
            {"worker_id": worker_id, "ids": _bigints(ids)},
            idempotent=True, queue=queue))

    def deregister_worker(self, worker_id: str, *, queue: str | None = None) -> int:
        """Releases every record ``worker_id`` holds and forgets it; returns how many."""
        return int(self._scalar("deregister_worker", _sql.DEREGISTER_WORKER,
                                {"worker_id": worker_id}, idempotent=True, queue=queue))

    # -- operations -----------------------------------------------------------------------

    def reclaim_orphans(self, max_records: int = 10000, *, queue: str | None = None) -> int:
        """Takes back records with an expired lease or a dead worker; returns how many."""
        return int(self._scalar("reclaim_orphans", _sql.RECLAIM_ORPHANS,
                                {"max_records": max_records}, idempotent=True, queue=queue))

    def retry_failed(
        self, queue: str, ids: Sequence[int] | None = None, *, error_like: str | None = None,
        finished_after: datetime | None = None, finished_before: datetime | None = None,
        min_attempt: int | None = None,
    ) -> int:
        """Puts failed records of ``queue`` back to pending: all, or those every filter given
        picks (among ``ids``, ``last_error LIKE error_like``, finished in
        [``finished_after``, ``finished_before``), failed on ``min_attempt`` or later);
        returns how many."""
        return int(self._scalar("retry_failed", _sql.RETRY_FAILED, {
            "queue": queue, "ids": None if ids is None else list(ids),
            "error_like": error_like, "finished_after": finished_after,
            "finished_before": finished_before, "min_attempt": min_attempt},
            idempotent=True, queue=queue))

    def cancel(
        self, ids: Sequence[int] | None = None, *, queue: str | None = None,
        error_like: str | None = None, min_attempt: int | None = None,
    ) -> int:
        """Cancels the pending or running records among ``ids``, or those of ``queue`` the
        filters pick (``last_error LIKE error_like``, ``attempt >= min_attempt``); returns
        how many."""
        return int(self._scalar("cancel", _sql.CANCEL, {
            "ids": None if ids is None else list(ids), "queue": queue,
            "error_like": error_like, "min_attempt": min_attempt},
            idempotent=True, queue=queue))

    def holds(
        self, id: int, lease_token: int, *, conn: psycopg.Connection[Any] | None = None,
    ) -> bool:
        """Whether the claim of record ``id`` under ``lease_token`` is still live.

        A true answer also keeps the record from being taken back until the transaction
        ends: with ``conn``, writes made afterwards in the caller's transaction on that
        connection commit only while the claim holds (``pgclaim.holds``).
        """
        return bool(self._scalar("holds", _sql.HOLDS, {"id": id, "lease_token": lease_token},
                                 idempotent=True, conn=conn))

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
        rows = self._call("run", _sql.RUN, {
            "queue": queue, "handler": handler, "max_records": max_records,
            "time_budget": as_interval(time_budget)}, idempotent=False, queue=queue, conn=conn)
        return [(int(r[0]), str(r[1]), r[2]) for r in rows]

    def latency(self, queue: str, since: Duration = timedelta(minutes=5)) -> dict[str, Latency]:
        """Wait (enqueue to first claim) and run (last claim to finish) times of the records
        of ``queue`` that finished in the last ``since``, keyed ``"wait"`` and ``"run"``."""
        rows = self._call("latency", _sql.LATENCY, {
            "queue": queue, "since": as_interval(since)}, idempotent=True, queue=queue)
        return {str(r[0]): Latency(
            records=int(r[1]), p50=r[2], p95=r[3], p99=r[4], max=r[5], sum_seconds=float(r[6]),
            buckets=list(zip((float(le) for le in r[7]), (int(n) for n in r[8]), strict=True)),
        ) for r in rows}

    def purge(
        self, queue: str, older_than: Duration | None = None, max_records: int = 100000,
    ) -> int:
        """Deletes finished records older than ``older_than`` (default: the retention)."""
        return int(self._scalar("purge", _sql.PURGE, {
            "queue": queue, "older_than": as_interval(older_than), "max_records": max_records},
            idempotent=True, queue=queue))

    def configure(
        self, *, worker_timeout: Duration | None = None, sweep_limit: int | None = None,
        max_ids: int | None = None, max_error_bytes: int | None = None,
        max_info_bytes: int | None = None, purge_limit: int | None = None,
    ) -> None:
        """Sets the cluster-wide settings given (``None``: unchanged): ``worker_timeout``,
        ``sweep_limit``, the limits ``max_ids``, ``max_error_bytes``, ``max_info_bytes``, and
        ``purge_limit`` (finished records past retention each ``reclaim_orphans`` deletes;
        0 turns that off)."""
        self._call("configure", _sql.CONFIGURE, {
            "worker_timeout": as_interval(worker_timeout), "sweep_limit": sweep_limit,
            "max_ids": max_ids, "max_error_bytes": max_error_bytes,
            "max_info_bytes": max_info_bytes, "purge_limit": purge_limit},
            idempotent=True)

    def grant_queue(self, queue: str, role: str, privileges: Sequence[str]) -> list[str]:
        """Grants ``role`` the ``privileges`` ('enqueue', 'claim', 'read') on ``queue``, which
        restricts the queue to its granted roles and pgclaim_admin; returns the role's
        privileges on it (docs/security.md)."""
        return list(self._scalar("grant_queue", _sql.GRANT_QUEUE, {
            "queue": queue, "role": role, "privileges": list(privileges)},
            idempotent=True, queue=queue))

    def revoke_queue(self, queue: str, role: str, privileges: Sequence[str]) -> list[str]:
        """Revokes ``privileges`` that ``grant_queue`` gave ``role`` on ``queue`` (without grants
        left the queue is open again); returns the role's privileges on it."""
        return list(self._scalar("revoke_queue", _sql.REVOKE_QUEUE, {
            "queue": queue, "role": role, "privileges": list(privileges)},
            idempotent=True, queue=queue))

    def stats(self) -> list[QueueStats]:
        """One ``QueueStats`` per queue, in queue order."""
        return [QueueStats(*r) for r in self._call("stats", _sql.STATS, {}, idempotent=True)]

    def workers(self) -> list[WorkerStatus]:
        """One ``WorkerStatus`` per registered worker."""
        return [WorkerStatus(*r) for r in self._call("workers", _sql.WORKERS, {},
                                                     idempotent=True)]

    def metrics(self) -> list[Metric]:
        """The rows of ``pgclaim.metrics()``: per queue the caller may read, records by
        status, the oldest pending age and the ever-growing counters; workers alive and dead.
        Reads no finished record (docs/monitoring.md)."""
        return [Metric(*r) for r in self._call("metrics", _sql.METRICS, {}, idempotent=True)]

    def dead_letters(self, queue: str | None = None, max_records: int = 20) -> list[DeadLetter]:
        """The newest dead letters of ``queue`` (of every readable queue when ``None``),
        newest first, with their last error and no payload."""
        return [DeadLetter(*r) for r in self._call(
            "dead_letters", _sql.DEAD_LETTERS, {"queue": queue, "max_records": max_records},
            idempotent=True, queue=queue)]

    def stuck_records(self, max_records: int = 100) -> list[StuckRecord]:
        """At most ``max_records`` rows of ``pgclaim.stuck_records``, longest stuck first."""
        return [StuckRecord(*r) for r in self._call(
            "stuck_records", _sql.STUCK, {"max_records": max_records}, idempotent=True)]

    def health(
        self, max_xact_age: Duration = timedelta(minutes=5),
        max_pending_age: Duration = timedelta(hours=1),
    ) -> dict[str, Any]:
        """The ``pgclaim.health()`` document (``status`` is ok, degraded or failing)."""
        return dict(self._scalar("health", _sql.HEALTH, {
            "max_xact_age": as_interval(max_xact_age),
            "max_pending_age": as_interval(max_pending_age)}, idempotent=True))

    def schema_version(self) -> int:
        """The version of the installed pgclaim schema (the number of its newest migration)."""
        return int(self._scalar("schema_version", _sql.SCHEMA_VERSION, {}, idempotent=True,
                                check=False))

    def check_schema(self) -> int:
        """Checks that the installed schema is at least the version this client needs (the
        newest migration it ships); returns the installed version.

        Raises ``SchemaMismatch`` for an older schema (run ``pgclaim migrate``) and
        ``SchemaMissing`` when there is none; a newer schema is accepted. The first call of a
        client runs this once (unless built with ``check_schema=False``); calling it checks
        again whatever that option says.
        """
        installed = self.schema_version()
        required = required_schema_version()
        if installed < required:
            raise SchemaMismatch(installed, required, package_version())
        self._schema_unchecked = False
        return installed

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
                    # When it goes back to the pool: ``_check`` lends a connection used a
                    # moment ago without a probe. (Noted here rather than in a pool ``reset``
                    # callback, which would make the pool take every connection back on a
                    # thread of its own: a thread hand-off per call.)
                    self._idle_since[c] = time.monotonic()

        return call_with_retry(once, policy=self.retry, operation=operation,
                               idempotent=idempotent, queue=queue, log=self._log)


__all__ = [
    "MAX_BATCH_SIZE", "Claimed", "Duration", "QueueClient", "QueueStats", "Schedule",
    "WorkerStatus", "as_interval", "default_dsn",
]
