"""Every call of the clients, built in one place: its statement (from ``pgclaim._sql``), its
parameters, how its rows decode and whether a retry is safe.

``QueueClient`` and ``AsyncQueueClient`` build a ``Call`` here and run it, each method in one
line: they differ only in how they reach the database (``psycopg.Connection`` or
``psycopg.AsyncConnection``), never in what they send or return.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Generic, NamedTuple, TypeVar, cast

import psycopg
from psycopg import sql
from psycopg.adapt import Dumper
from psycopg.types.json import Jsonb

from . import _sql
from ._types import (
    AnyCursor,
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
    claimed_records,
    lazy_loaders,
)

T = TypeVar("T")

Rows = list[Any]
"""The rows a statement returned (``Claimed`` records for a claim)."""


class Statement(NamedTuple):
    """One SQL statement of a call."""

    query: str | sql.Composed
    params: Mapping[str, Any]
    claims: str | None = None
    """the queue whose records the statement claims: its payloads and times are read as
    text and decoded on first access (``Claimed``)"""


class Call(NamedTuple, Generic[T]):
    """A call of the SQL API: what a client method sends, and how its answer decodes."""

    operation: str
    """the client method's name, as logged"""
    statements: tuple[Statement, ...]
    """one statement, or several sent in one pipeline (one round trip, one transaction)"""
    decode: Callable[..., T]
    """the result, from the rows of each statement (one argument per statement)"""
    idempotent: bool
    """whether running it twice is the same as once: retried when the outcome is unknown"""
    queue: str | None = None
    """the queue named in log records"""
    check: bool = True
    """whether the client's first call checks the schema version first"""


def prepare(cur: AnyCursor, statement: Statement) -> tuple[Callable[[str], Any], ...] | None:
    """Readies ``cur`` for ``statement``: for a claim, returns the lazy decoders of its rows."""
    return lazy_loaders(cur) if statement.claims is not None else None


def rows_of(rows: list[tuple[Any, ...]], statement: Statement,
            decoders: tuple[Callable[[str], Any], ...] | None) -> Rows:
    """The rows of ``statement`` as its call decodes them (``Claimed`` records for a claim)."""
    if statement.claims is None:
        return rows
    assert decoders is not None
    return claimed_records(rows, statement.claims, decoders)


def _call(operation: str, query: str | sql.Composed, params: Mapping[str, Any],
          decode: Callable[[Rows], T], *, idempotent: bool, queue: str | None = None,
          check: bool = True) -> Call[T]:
    return Call(operation, (Statement(query, params),), decode, idempotent, queue, check)


# -- decoding -------------------------------------------------------------------------------

def _none(rows: Rows) -> None:
    return None


def _int(rows: Rows) -> int:
    return int(rows[0][0])


def _bool(rows: Rows) -> bool:
    return bool(rows[0][0])


def _text(rows: Rows) -> str:
    return str(rows[0][0])


def _ints(rows: Rows) -> list[int]:
    return [int(r[0]) for r in rows]


def _texts(rows: Rows) -> list[str]:
    return list(rows[0][0])


def _same(rows: Rows) -> Rows:
    return rows


def _each(cls: Callable[..., T]) -> Callable[[Rows], list[T]]:
    """Decodes each row as ``cls(*row)``."""
    return lambda rows: [cls(*r) for r in rows]


# -- parameters -----------------------------------------------------------------------------

class _Int8Array(str):
    """A ``bigint[]`` parameter given as its text literal (``{1,2,3}``): psycopg dumps a
    list element by element in Python, a literal costs one ``str.join``."""


class _Int8ArrayDumper(Dumper):
    oid = psycopg.postgres.types["int8"].array_oid

    def dump(self, obj: Any) -> bytes:
        return obj.encode()  # type: ignore[no-any-return]


psycopg.adapters.register_dumper(_Int8Array, _Int8ArrayDumper)

_INT = frozenset({int})


def _all_ints(values: list[Any]) -> bool:
    """Whether every value is exactly an ``int`` (a C-speed pass: no generator)."""
    return set(map(type, values)) <= _INT


def bigints(values: Sequence[Any] | None) -> list[Any] | _Int8Array | None:
    """A ``bigint[]`` parameter: a text literal when every value is an ``int``, else the
    values as a list (psycopg dumps them, and the server reports what is wrong)."""
    if values is None:
        return None
    if type(values) is not list:
        values = list(values)
    if _all_ints(values):
        return _Int8Array("{" + ",".join(map(str, values)) + "}")
    return values


def fencing(
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


def _queue_of(ids: Sequence[int] | Sequence[Claimed], queue: str | None) -> str | None:
    """The queue to name in log records: the one given, else that of the first record."""
    if queue is None and ids and isinstance(ids[0], Claimed):
        return ids[0].queue
    return queue


def _list(values: Sequence[Any] | None) -> list[Any] | None:
    return None if values is None else list(values)


# -- queues ---------------------------------------------------------------------------------

def _queue_settings(operation: str, statement: Callable[[list[str]], sql.Composed],
                    queue: str, values: Mapping[str, Any]) -> Call[None]:
    """``create_queue`` or ``alter_queue`` naming only the settings given: ``values`` are the
    method's arguments (its keyword parameters are exactly ``_sql.QUEUE_SETTINGS``, a test
    checks it), those left ``None`` are not sent."""
    given = {name: as_interval(values[name]) if kind == "interval" else values[name]
             for name, kind in _sql.QUEUE_SETTINGS.items() if values[name] is not None}
    return _call(operation, statement(list(given)), {"queue": queue, **given}, _none,
                 idempotent=True, queue=queue)


def create_queue(queue: str, settings: Mapping[str, Any]) -> Call[None]:
    """``QueueClient.create_queue``; ``settings`` holds every queue setting (``None``: the
    SQL's default)."""
    return _queue_settings("create_queue", _sql.create_queue, queue, settings)


def alter_queue(queue: str, settings: Mapping[str, Any]) -> Call[None]:
    """``QueueClient.alter_queue``; ``settings`` holds every queue setting (``None``:
    unchanged)."""
    return _queue_settings("alter_queue", _sql.alter_queue, queue, settings)


def drop_queue(queue: str, force: bool) -> Call[int]:
    return _call("drop_queue", _sql.DROP_QUEUE, {"queue": queue, "force": force}, _int,
                 idempotent=False, queue=queue)


def pause_queue(queue: str) -> Call[None]:
    return _call("pause_queue", _sql.PAUSE_QUEUE, {"queue": queue}, _none, idempotent=True,
                 queue=queue)


def resume_queue(queue: str) -> Call[None]:
    return _call("resume_queue", _sql.RESUME_QUEUE, {"queue": queue}, _none, idempotent=True,
                 queue=queue)


# -- producing ------------------------------------------------------------------------------

def enqueue(queue: str, payload: Any, priority: int, run_at: datetime | None,
            dedup_key: str | None, max_attempts: int | None, group_key: str | None
            ) -> Call[int]:
    # Without a dedup_key a repeat would add the record twice: not retried once sent.
    return _call("enqueue", _sql.ENQUEUE, {
        "queue": queue, "payload": Jsonb(payload), "priority": priority, "run_at": run_at,
        "dedup_key": dedup_key, "max_attempts": max_attempts, "group_key": group_key},
        _int, idempotent=dedup_key is not None, queue=queue)


def _created(rows: Rows) -> list[tuple[int, bool]]:
    return [(int(r[0]), bool(r[1])) for r in rows]


def enqueue_items(queue: str, items: Sequence[Item]) -> Call[list[tuple[int, bool]]]:
    payload = [{k: (v.isoformat() if isinstance(v, datetime) else v)
                for k, v in item.items() if v is not None} for item in items]
    return _call("enqueue_items", _sql.ENQUEUE_ITEMS, {"queue": queue, "items": Jsonb(payload)},
                 _created, idempotent=all(i.get("dedup_key") is not None for i in items),
                 queue=queue)


def _time(rows: Rows) -> datetime | None:
    return cast("datetime | None", rows[0][0])


def next_eligible(queue: str) -> Call[datetime | None]:
    return _call("next_eligible", _sql.NEXT_ELIGIBLE, {"queue": queue}, _time,
                 idempotent=True, queue=queue)


def enqueue_many(queue: str, payloads: Sequence[Any], priority: int, run_at: datetime | None
                 ) -> Call[list[int]]:
    return _call("enqueue_many", _sql.ENQUEUE_BATCH, {
        "queue": queue, "payloads": [Jsonb(p) for p in payloads], "priority": priority,
        "run_at": run_at}, _ints, idempotent=False, queue=queue)


# -- periodic schedules ---------------------------------------------------------------------

def _slot(rows: Rows) -> datetime:
    return cast(datetime, rows[0][0])


def schedule(name: str, queue: str, payload: Any, cron: str | None, every: Duration | None,
             priority: int, max_attempts: int | None, group_key: str | None, timezone: str
             ) -> Call[datetime]:
    return _call("schedule", _sql.SCHEDULE, {
        "name": name, "queue": queue, "payload": Jsonb({} if payload is None else payload),
        "cron": cron, "every": as_interval(every), "priority": priority,
        "max_attempts": max_attempts, "group_key": group_key, "timezone": timezone,
    }, _slot, idempotent=True, queue=queue)


def unschedule(name: str) -> Call[bool]:
    return _call("unschedule", _sql.UNSCHEDULE, {"name": name}, _bool, idempotent=True)


def schedules() -> Call[list[Schedule]]:
    return _call("schedules", _sql.SCHEDULES, {}, _each(Schedule), idempotent=True)


def tick() -> Call[int]:
    return _call("tick", _sql.TICK, {}, _int, idempotent=True)


# -- consuming ------------------------------------------------------------------------------

def _claim_statement(queue: str, worker_id: str, batch_size: int, lease: Duration | None
                     ) -> Statement:
    return Statement(_sql.CLAIM, {"queue": queue, "worker_id": worker_id,
                                  "batch_size": batch_size, "lease": as_interval(lease)},
                     claims=queue)


def claim(queue: str, worker_id: str, batch_size: int, lease: Duration | None
          ) -> Call[list[Claimed]]:
    # Not retried once sent: records of a claim whose answer was lost come back when their
    # lease expires.
    return Call("claim", (_claim_statement(queue, worker_id, batch_size, lease),), _same,
                idempotent=False, queue=queue)


def _completed_and_claimed(done: Rows, claimed: list[Claimed]) -> tuple[int, list[Claimed]]:
    return int(done[0][0]), claimed


def complete_and_claim(worker_id: str, records: Sequence[Claimed], queue: str,
                       batch_size: int, lease: Duration | None
                       ) -> Call[tuple[int, list[Claimed]]]:
    # One pipeline, one Sync for both: the server runs them in one implicit transaction.
    ids, tokens = fencing(records, None)
    done = Statement(_sql.COMPLETE, {"worker_id": worker_id, "ids": bigints(ids),
                                     "lease_tokens": bigints(tokens)})
    return Call("complete_and_claim",
                (done, _claim_statement(queue, worker_id, batch_size, lease)),
                _completed_and_claimed, idempotent=False, queue=queue)


def complete(worker_id: str, ids: Sequence[int] | Sequence[Claimed],
             lease_tokens: Sequence[int] | None, queue: str | None) -> Call[int]:
    id_list, tokens = fencing(ids, lease_tokens)
    return _call("complete", _sql.COMPLETE, {
        "worker_id": worker_id, "ids": bigints(id_list), "lease_tokens": bigints(tokens)},
        _int, idempotent=True, queue=_queue_of(ids, queue))


def fail(worker_id: str, id: int | Claimed, error: str, retry_after: Duration | None,
         lease_token: int | None, fatal: bool, queue: str | None) -> Call[str]:
    record_id = id
    if isinstance(id, Claimed):
        if lease_token is not None and lease_token != id.lease_token:
            raise TypeError("pgclaim: a Claimed record carries its lease token: "
                            "do not pass another lease_token with it")
        record_id, lease_token, queue = id.id, id.lease_token, queue or id.queue
    return _call("fail", _sql.FAIL, {
        "worker_id": worker_id, "id": record_id, "error": error,
        "retry_after": as_interval(retry_after), "lease_token": lease_token, "fatal": fatal},
        _text, idempotent=False, queue=queue)


def _statuses(rows: Rows) -> dict[int, str]:
    return {int(i): str(s) for i, s in rows}


def fail_batch(worker_id: str, records: Sequence[Claimed], errors: Sequence[str],
               retry_after: Sequence[Duration | None] | None, fatal: Sequence[bool] | None,
               queue: str | None) -> Call[dict[int, str]]:
    n = len(records)
    if len(errors) != n or (retry_after is not None and len(retry_after) != n) or (
            fatal is not None and len(fatal) != n):
        raise ValueError("pgclaim: fail_batch takes one error (and retry_after, fatal) "
                         "per record")
    return _call("fail_batch", _sql.FAIL_BATCH, {
        "worker_id": worker_id, "ids": bigints([r.id for r in records]),
        "errors": list(errors), "lease_tokens": bigints([r.lease_token for r in records]),
        "retry_after": None if retry_after is None else [as_interval(a) for a in retry_after],
        "fatal": _list(fatal)}, _statuses, idempotent=True, queue=queue)


def extend_lease(worker_id: str, ids: Sequence[int] | Sequence[Claimed],
                 lease: Duration | None, lease_tokens: Sequence[int] | None,
                 queue: str | None) -> Call[int]:
    id_list, tokens = fencing(ids, lease_tokens)
    return _call("extend_lease", _sql.EXTEND_LEASE, {
        "worker_id": worker_id, "ids": bigints(id_list), "lease": as_interval(lease),
        "lease_tokens": bigints(tokens)}, _int, idempotent=True, queue=_queue_of(ids, queue))


def release(worker_id: str, ids: Sequence[int] | Sequence[Claimed],
            lease_tokens: Sequence[int] | None, queue: str | None) -> Call[int]:
    id_list, tokens = fencing(ids, lease_tokens)
    return _call("release", _sql.RELEASE, {
        "worker_id": worker_id, "ids": bigints(id_list), "lease_tokens": bigints(tokens)},
        _int, idempotent=True, queue=_queue_of(ids, queue))


# -- workers --------------------------------------------------------------------------------

def register_worker(worker_id: str, info: dict[str, Any] | None) -> Call[None]:
    return _call("register_worker", _sql.REGISTER_WORKER, {
        "worker_id": worker_id, "info": Jsonb(info or {})}, _none, idempotent=True)


def heartbeat(worker_id: str, ids: Sequence[int] | None, queue: str | None) -> Call[int]:
    return _call("heartbeat", _sql.HEARTBEAT, {"worker_id": worker_id, "ids": bigints(ids)},
                 _int, idempotent=True, queue=queue)


def deregister_worker(worker_id: str, queue: str | None) -> Call[int]:
    return _call("deregister_worker", _sql.DEREGISTER_WORKER, {"worker_id": worker_id}, _int,
                 idempotent=True, queue=queue)


# -- operations -----------------------------------------------------------------------------

def reclaim_orphans(max_records: int, queue: str | None) -> Call[int]:
    return _call("reclaim_orphans", _sql.RECLAIM_ORPHANS, {"max_records": max_records}, _int,
                 idempotent=True, queue=queue)


def retry_failed(queue: str, ids: Sequence[int] | None, error_like: str | None,
                 finished_after: datetime | None, finished_before: datetime | None,
                 min_attempt: int | None) -> Call[int]:
    return _call("retry_failed", _sql.RETRY_FAILED, {
        "queue": queue, "ids": _list(ids), "error_like": error_like,
        "finished_after": finished_after, "finished_before": finished_before,
        "min_attempt": min_attempt}, _int, idempotent=True, queue=queue)


def cancel(ids: Sequence[int] | None, queue: str | None, error_like: str | None,
           min_attempt: int | None) -> Call[int]:
    return _call("cancel", _sql.CANCEL, {
        "ids": _list(ids), "queue": queue, "error_like": error_like,
        "min_attempt": min_attempt}, _int, idempotent=True, queue=queue)


def holds(id: int, lease_token: int) -> Call[bool]:
    return _call("holds", _sql.HOLDS, {"id": id, "lease_token": lease_token}, _bool,
                 idempotent=True)


def _handled(rows: Rows) -> list[tuple[int, str, str | None]]:
    return [(int(r[0]), str(r[1]), r[2]) for r in rows]


def run_sql_handler(queue: str, handler: str, max_records: int, time_budget: Duration
                    ) -> Call[list[tuple[int, str, str | None]]]:
    # Not retried: the run either committed or left everything as it was.
    return _call("run", _sql.RUN, {
        "queue": queue, "handler": handler, "max_records": max_records,
        "time_budget": as_interval(time_budget)}, _handled, idempotent=False, queue=queue)


def _latencies(rows: Rows) -> dict[str, Latency]:
    return {str(r[0]): Latency(
        records=int(r[1]), p50=r[2], p95=r[3], p99=r[4], max=r[5], sum_seconds=float(r[6]),
        buckets=list(zip((float(le) for le in r[7]), (int(n) for n in r[8]), strict=True)),
    ) for r in rows}


def latency(queue: str, since: Duration) -> Call[dict[str, Latency]]:
    return _call("latency", _sql.LATENCY, {"queue": queue, "since": as_interval(since)},
                 _latencies, idempotent=True, queue=queue)


def purge(queue: str, older_than: Duration | None, max_records: int) -> Call[int]:
    return _call("purge", _sql.PURGE, {
        "queue": queue, "older_than": as_interval(older_than), "max_records": max_records},
        _int, idempotent=True, queue=queue)


def configure(worker_timeout: Duration | None, sweep_limit: int | None, max_ids: int | None,
              max_error_bytes: int | None, max_info_bytes: int | None,
              purge_limit: int | None) -> Call[None]:
    return _call("configure", _sql.CONFIGURE, {
        "worker_timeout": as_interval(worker_timeout), "sweep_limit": sweep_limit,
        "max_ids": max_ids, "max_error_bytes": max_error_bytes,
        "max_info_bytes": max_info_bytes, "purge_limit": purge_limit}, _none, idempotent=True)


def grant_queue(queue: str, role: str, privileges: Sequence[str]) -> Call[list[str]]:
    return _call("grant_queue", _sql.GRANT_QUEUE, {
        "queue": queue, "role": role, "privileges": list(privileges)}, _texts,
        idempotent=True, queue=queue)


def revoke_queue(queue: str, role: str, privileges: Sequence[str]) -> Call[list[str]]:
    return _call("revoke_queue", _sql.REVOKE_QUEUE, {
        "queue": queue, "role": role, "privileges": list(privileges)}, _texts,
        idempotent=True, queue=queue)


def stats() -> Call[list[QueueStats]]:
    return _call("stats", _sql.STATS, {}, _each(QueueStats), idempotent=True)


def workers() -> Call[list[WorkerStatus]]:
    return _call("workers", _sql.WORKERS, {}, _each(WorkerStatus), idempotent=True)


def metrics() -> Call[list[Metric]]:
    return _call("metrics", _sql.METRICS, {}, _each(Metric), idempotent=True)


def dead_letters(queue: str | None, max_records: int) -> Call[list[DeadLetter]]:
    return _call("dead_letters", _sql.DEAD_LETTERS, {
        "queue": queue, "max_records": max_records}, _each(DeadLetter), idempotent=True,
        queue=queue)


def stuck_records(max_records: int) -> Call[list[StuckRecord]]:
    return _call("stuck_records", _sql.STUCK, {"max_records": max_records},
                 _each(StuckRecord), idempotent=True)


def _document(rows: Rows) -> dict[str, Any]:
    return dict(rows[0][0])


def health(max_xact_age: Duration, max_pending_age: Duration) -> Call[dict[str, Any]]:
    return _call("health", _sql.HEALTH, {
        "max_xact_age": as_interval(max_xact_age),
        "max_pending_age": as_interval(max_pending_age)}, _document, idempotent=True)


def schema_version() -> Call[int]:
    # Not behind the schema check: it is the check.
    return _call("schema_version", _sql.SCHEMA_VERSION, {}, _int, idempotent=True, check=False)

