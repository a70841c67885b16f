"""What the calls of the clients take and return: ``Claimed`` (decoded lazily), ``Item``,
``Latency``, the rows of the views, durations; shared by ``QueueClient`` and
``AsyncQueueClient`` (``pgclaim._calls`` builds the calls from them)."""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any, NotRequired, TypedDict

import psycopg
from psycopg import abc
from psycopg.pq import Format
from psycopg.types.json import JsonbLoader
from psycopg.types.string import TextLoader


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


AnyCursor = psycopg.Cursor[Any] | psycopg.AsyncCursor[Any]
"""A cursor of either kind of connection."""


def claimed_records(rows: list[tuple[Any, ...]], queue: str,
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


def lazy_loaders(cur: AnyCursor) -> tuple[Callable[[str], Any], ...]:
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


def _loaded_by(cls: type[abc.Loader] | None, oid: int, cur: AnyCursor
               ) -> Callable[[str], Any]:
    """Decodes a text as a loader of class ``cls`` does (as text when there is none)."""
    if cls is None:
        return str
    return _encoded(cls(oid, cur).load)


_JSONB_OID = psycopg.postgres.types["jsonb"].oid
_TIMESTAMPTZ_OID = psycopg.postgres.types["timestamptz"].oid


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
    blocked: int
    """pending records waiting behind the head of their FIFO group (not in ``pending``)"""


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



def as_interval(value: Duration | None) -> timedelta | None:
    """``value`` as a ``timedelta`` (numbers are seconds); ``None`` stays ``None``."""
    if value is None or isinstance(value, timedelta):
        return value
    return timedelta(seconds=float(value))

