"""QueueClient: one method per pgclaim SQL function."""
from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from . import _sql
from .errors import translate


@dataclass(frozen=True)
class Claimed:
    """A record handed to a worker by ``claim``; ``lease_token`` fences its reports."""

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


def default_dsn() -> str:
    """The DSN to use when none is given: ``DATABASE_URL``, else libpq's ``PG*`` variables."""
    return os.environ.get("DATABASE_URL", "")


class QueueClient:
    """A thin client of the pgclaim SQL API over a DSN, a pool or a connection."""

    def __init__(
        self,
        dsn_or_pool: str | ConnectionPool | psycopg.Connection[Any] | None = None,
        *,
        min_size: int = 1,
        max_size: int = 4,
    ) -> None:
        self._conn: psycopg.Connection[Any] | None = None
        self._owns_pool = False
        if isinstance(dsn_or_pool, ConnectionPool):
            self._pool: ConnectionPool | None = dsn_or_pool
        elif isinstance(dsn_or_pool, psycopg.Connection):
            self._pool = None
            self._conn = dsn_or_pool
        else:
            dsn = default_dsn() if dsn_or_pool is None else dsn_or_pool
            self._pool = ConnectionPool(
                dsn, min_size=min_size, max_size=max_size, open=False,
                check=ConnectionPool.check_connection,
            )
            self._pool.open(wait=True)
            self._owns_pool = True

    def close(self) -> None:
        """Closes the pool this client owns (a caller's pool or connection is left open)."""
        if self._owns_pool and self._pool is not None:
            self._pool.close()

    def __enter__(self) -> QueueClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        if self._conn is not None:
            yield self._conn
        else:
            assert self._pool is not None
            with self._pool.connection() as conn:
                yield conn

    def _run(self, query: str, params: dict[str, Any]) -> list[Any]:
        try:
            with self._connection() as conn, conn.cursor() as cur:
                cur.execute(query, params)
                return cur.fetchall() if cur.description else []
        except psycopg.Error as exc:
            raise translate(exc) from exc

    def _scalar(self, query: str, params: dict[str, Any]) -> Any:
        return self._run(query, params)[0][0]

    def create_queue(
        self,
        queue: str,
        *,
        lease: timedelta = timedelta(minutes=5),
        max_attempts: int = 5,
        backoff_base: timedelta = timedelta(seconds=10),
        backoff_max: timedelta = timedelta(hours=1),
        retention: timedelta = timedelta(days=7),
    ) -> None:
        """Creates a queue (idempotent: an existing queue keeps its settings)."""
        self._run(_sql.CREATE_QUEUE, dict(
            queue=queue, lease=lease, max_attempts=max_attempts, backoff_base=backoff_base,
            backoff_max=backoff_max, retention=retention))

    def enqueue(
        self,
        queue: str,
        payload: Any,
        *,
        priority: int = 0,
        run_at: datetime | None = None,
        dedup_key: str | None = None,
        max_attempts: int | None = None,
    ) -> int:
        """Adds one record and returns its id (the existing id for a live dedup_key)."""
        return int(self._scalar(_sql.ENQUEUE, dict(
            queue=queue, payload=Jsonb(payload), priority=priority, run_at=run_at,
            dedup_key=dedup_key, max_attempts=max_attempts)))

    def enqueue_many(
        self, queue: str, payloads: Sequence[Any], *, priority: int = 0,
        run_at: datetime | None = None,
    ) -> list[int]:
        """Adds one record per payload in one statement; returns the ids in input order."""
        rows = self._run(_sql.ENQUEUE_BATCH, dict(
            queue=queue, payloads=[Jsonb(p) for p in payloads], priority=priority,
            run_at=run_at))
        return [int(r[0]) for r in rows]

    def claim(
        self, queue: str, worker_id: str, batch_size: int = 100,
        lease: timedelta | None = None,
    ) -> list[Claimed]:
        """Claims up to ``batch_size`` due records for ``worker_id`` under a lease."""
        rows = self._run(_sql.CLAIM, dict(
            queue=queue, worker_id=worker_id, batch_size=batch_size, lease=lease))
        return [Claimed(*r) for r in rows]

    def complete(
        self, worker_id: str, ids: Sequence[int], lease_tokens: Sequence[int] | None = None,
    ) -> int:
        """Completes the records among ``ids`` that ``worker_id`` holds; returns how many."""
        return int(self._scalar(_sql.COMPLETE, dict(
            worker_id=worker_id, ids=list(ids),
            lease_tokens=None if lease_tokens is None else list(lease_tokens))))

    def fail(
        self, worker_id: str, id: int, error: str, *, retry_after: timedelta | None = None,
        lease_token: int | None = None, fatal: bool = False,
    ) -> str:
        """Reports a failed attempt; returns the new status ('pending' or 'failed')."""
        return str(self._scalar(_sql.FAIL, dict(
            worker_id=worker_id, id=id, error=error, retry_after=retry_after,
            lease_token=lease_token, fatal=fatal)))

    def retry_failed(self, queue: str, ids: Sequence[int] | None = None) -> int:
        """Puts failed records (all, or those among ``ids``) back to pending; returns how many."""
        return int(self._scalar(_sql.RETRY_FAILED, dict(
            queue=queue, ids=None if ids is None else list(ids))))

    def stats(self) -> list[QueueStats]:
        """One ``QueueStats`` per queue."""
        return [QueueStats(*r) for r in self._run(_sql.STATS, {})]

    def health(self) -> dict[str, Any]:
        """The ``pgclaim.health()`` document."""
        return dict(self._scalar(_sql.HEALTH, {}))


__all__ = ["Claimed", "QueueClient", "QueueStats", "default_dsn", "dict_row"]
