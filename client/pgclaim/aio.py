"""AsyncQueueClient: ``QueueClient`` for asyncio, over psycopg's ``AsyncConnection``.

The same methods with the same parameters, results, errors and retry rules as
``QueueClient``: both run the calls that ``pgclaim._calls`` builds, this one on an
``AsyncConnectionPool`` (or the caller's ``AsyncConnection``) and waiting between retries
with ``asyncio.sleep``. ``AsyncWorker`` (``pgclaim.aio_worker``) is its worker loop.
"""
from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, Self, TypeVar, overload

import psycopg
from psycopg_pool import AsyncConnectionPool
from psycopg_pool.base import AttemptWithBackoff

from . import _calls
from ._calls import Call
from ._types import (
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
)
from .client import ClientBase, QueueClient, _CappedAttempt
from .errors import translate
from .retry import Attempt, acall_with_retry

T = TypeVar("T")


class _AsyncPool(AsyncConnectionPool):
    """``pgclaim.client._Pool`` for asyncio: reconnection attempts at least every
    ``reconnect_delay_max`` seconds."""

    reconnect_delay_max = 2.0

    async def _add_connection(
        self, attempt: AttemptWithBackoff | None, growing: bool = False,
    ) -> None:
        if attempt is None:
            attempt = _CappedAttempt(
                timeout=self.reconnect_timeout, max_delay=self.reconnect_delay_max)
        await super()._add_connection(attempt, growing)


async def _execute(c: psycopg.AsyncConnection[Any], call: Call[T]) -> T:
    """Runs ``call`` on ``c``: its statement, or its statements in one pipeline."""
    statements = call.statements
    if len(statements) == 1:
        statement = statements[0]
        async with c.cursor() as cur:
            decoders = _calls.prepare(cur, statement)
            await cur.execute(statement.query, statement.params)
            rows = await cur.fetchall() if cur.description else []
            return call.decode(_calls.rows_of(rows, statement, decoders))
    cursors = [c.cursor() for _ in statements]
    try:
        decoders_of = [_calls.prepare(cur, s) for cur, s in zip(cursors, statements)]
        # One Sync for all: the server runs them in one implicit transaction.
        async with c.pipeline():
            for cur, s in zip(cursors, statements):
                await cur.execute(s.query, s.params)
        return call.decode(*[
            _calls.rows_of(await cur.fetchall() if cur.description else [], s, d)
            for cur, s, d in zip(cursors, statements, decoders_of)])
    finally:
        for cur in cursors:
            await cur.close()


class AsyncQueueClient(ClientBase["AsyncConnectionPool[Any]", psycopg.AsyncConnection[Any]]):
    """``QueueClient`` for asyncio: the pgclaim SQL API over a DSN, an ``AsyncConnectionPool``
    or an ``AsyncConnection``, each method a coroutine.

    * ``AsyncQueueClient(dsn)`` (or ``None``: ``DATABASE_URL``, then libpq's ``PG*``
      variables) owns an ``AsyncConnectionPool`` of autocommit connections, opened by
      ``open()``, ``async with`` or the first call (without waiting for a connection: the
      client may start before its database); each call is one statement in its own
      transaction, retried on transient failures by ``retry`` with ``asyncio.sleep``.
    * ``AsyncQueueClient(pool)`` uses the caller's pool, opened by the caller, and leaves it
      open on ``close``.
    * ``AsyncQueueClient(conn)`` runs every call on the caller's ``AsyncConnection``, inside
      whatever transaction the caller has open: nothing is committed and nothing is retried.

    Every method that takes ``conn=`` (an ``AsyncConnection``) runs on that connection
    instead: use it to enqueue inside the caller's own transaction. The parameters,
    results, errors and retry rules of every method are those of ``QueueClient`` (whose
    docstrings each method carries); ``run`` takes a coroutine function.
    """

    _pool_type = AsyncConnectionPool
    _conn_type = psycopg.AsyncConnection
    _must_open = False

    def _new_pool(self, dsn: str, *, reconnect_delay_max: float, **settings: Any
                  ) -> AsyncConnectionPool[Any]:
        pool = _AsyncPool(dsn, open=False, check=self._check,
                          reconnect_failed=self._reconnect_failed, **settings)
        pool.reconnect_delay_max = reconnect_delay_max
        self._must_open = True  # an asyncio pool opens inside the event loop
        return pool

    # -- plumbing -------------------------------------------------------------------------

    async def _check(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """Pool ``check`` callback: probes a connection that sat idle ``check_idle_after``
        seconds or more, lends one used a moment ago as it is (``QueueClient._check``)."""
        if self._idle_long(conn):
            await AsyncConnectionPool.check_connection(conn)

    async def open(self) -> None:
        """Opens the pool this client owns (once; without waiting for a connection). The
        first call opens it too; a caller's pool is the caller's to open."""
        if self._must_open and self._pool is not None:
            self._must_open = False
            await self._pool.open(wait=False)

    async def close(self) -> None:
        """Closes the pool this client owns (a caller's pool or connection is left open)."""
        if self._owns_pool and self._pool is not None and not self._must_open:
            await self._pool.close()

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _call(self, call: Call[T], conn: psycopg.AsyncConnection[Any] | None = None
                    ) -> T:
        """Runs ``call`` (``QueueClient._call``)."""
        run = self.run if call.check else self._run
        return await run(lambda c: _execute(c, call), operation=call.operation,
                         idempotent=call.idempotent, queue=call.queue, conn=conn)

    # -- queues ---------------------------------------------------------------------------

    async def create_queue(
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
        await self._call(_calls.create_queue(queue, locals()))  # the settings are the parameters

    async def alter_queue(
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
        await self._call(_calls.alter_queue(queue, locals()))  # the settings are the parameters

    async def drop_queue(self, queue: str, *, force: bool = False) -> int:
        return await self._call(_calls.drop_queue(queue, force))

    async def pause_queue(self, queue: str) -> None:
        await self._call(_calls.pause_queue(queue))

    async def resume_queue(self, queue: str) -> None:
        await self._call(_calls.resume_queue(queue))

    # -- producing ------------------------------------------------------------------------

    async def enqueue(
        self,
        queue: str,
        payload: Any,
        *,
        priority: int = 0,
        run_at: datetime | None = None,
        dedup_key: str | None = None,
        max_attempts: int | None = None,
        conn: psycopg.AsyncConnection[Any] | None = None,
        group_key: str | None = None,
    ) -> int:
        return await self._call(_calls.enqueue(queue, payload, priority, run_at, dedup_key,
                                               max_attempts, group_key), conn)

    async def enqueue_items(
        self,
        queue: str,
        items: Sequence[Item],
        *,
        conn: psycopg.AsyncConnection[Any] | None = None,
    ) -> list[tuple[int, bool]]:
        return await self._call(_calls.enqueue_items(queue, items), conn)

    async def next_eligible(self, queue: str) -> datetime | None:
        return await self._call(_calls.next_eligible(queue))

    # -- periodic schedules -----------------------------------------------------------------

    async def schedule(
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
        return await self._call(_calls.schedule(name, queue, payload, cron, every, priority,
                                                max_attempts, group_key, timezone))

    async def unschedule(self, name: str) -> bool:
        return await self._call(_calls.unschedule(name))

    async def schedules(self) -> list[Schedule]:
        return await self._call(_calls.schedules())

    async def tick(self) -> int:
        return await self._call(_calls.tick())

    async def enqueue_many(
        self,
        queue: str,
        payloads: Sequence[Any],
        *,
        priority: int = 0,
        run_at: datetime | None = None,
        conn: psycopg.AsyncConnection[Any] | None = None,
    ) -> list[int]:
        return await self._call(_calls.enqueue_many(queue, payloads, priority, run_at), conn)

    # -- consuming ------------------------------------------------------------------------

    async def claim(
        self, queue: str, worker_id: str, batch_size: int = 100,
        lease: Duration | None = None,
    ) -> list[Claimed]:
        return await self._call(_calls.claim(queue, worker_id, batch_size, lease))

    async def complete_and_claim(
        self, worker_id: str, records: Sequence[Claimed], queue: str, batch_size: int = 100,
        lease: Duration | None = None,
    ) -> tuple[int, list[Claimed]]:
        return await self._call(_calls.complete_and_claim(worker_id, records, queue,
                                                          batch_size, lease))

    @overload
    async def complete(
        self, worker_id: str, records: Sequence[Claimed], /, *, queue: str | None = None,
        conn: psycopg.AsyncConnection[Any] | None = None,
    ) -> int: ...

    @overload
    async def complete(
        self, worker_id: str, ids: Sequence[int], lease_tokens: Sequence[int] | None = None,
        *, queue: str | None = None, conn: psycopg.AsyncConnection[Any] | None = None,
    ) -> int: ...

    async def complete(
        self, worker_id: str, ids: Sequence[int] | Sequence[Claimed],
        lease_tokens: Sequence[int] | None = None, *, queue: str | None = None,
        conn: psycopg.AsyncConnection[Any] | None = None,
    ) -> int:
        return await self._call(_calls.complete(worker_id, ids, lease_tokens, queue), conn)

    async def fail(
        self, worker_id: str, id: int | Claimed, error: str, *,
        retry_after: Duration | None = None, lease_token: int | None = None,
        fatal: bool = False, queue: str | None = None,
    ) -> str:
        return await self._call(_calls.fail(worker_id, id, error, retry_after, lease_token,
                                            fatal, queue))

    async def fail_batch(
        self, worker_id: str, records: Sequence[Claimed], errors: Sequence[str], *,
        retry_after: Sequence[Duration | None] | None = None,
        fatal: Sequence[bool] | None = None, queue: str | None = None,
    ) -> dict[int, str]:
        return await self._call(_calls.fail_batch(worker_id, records, errors, retry_after,
                                                  fatal, queue))

    @overload
    async def extend_lease(
        self, worker_id: str, records: Sequence[Claimed], /, lease: Duration | None = None,
        *, queue: str | None = None,
    ) -> int: ...

    @overload
    async def extend_lease(
        self, worker_id: str, ids: Sequence[int], lease: Duration | None = None,
        lease_tokens: Sequence[int] | None = None, *, queue: str | None = None,
    ) -> int: ...

    async def extend_lease(
        self, worker_id: str, ids: Sequence[int] | Sequence[Claimed],
        lease: Duration | None = None, lease_tokens: Sequence[int] | None = None, *,
        queue: str | None = None,
    ) -> int:
        return await self._call(_calls.extend_lease(worker_id, ids, lease, lease_tokens,
                                                    queue))

    @overload
    async def release(
        self, worker_id: str, records: Sequence[Claimed], /, *, queue: str | None = None,
    ) -> int: ...

    @overload
    async def release(
        self, worker_id: str, ids: Sequence[int], lease_tokens: Sequence[int] | None = None,
        *, queue: str | None = None,
    ) -> int: ...

    async def release(
        self, worker_id: str, ids: Sequence[int] | Sequence[Claimed],
        lease_tokens: Sequence[int] | None = None, *, queue: str | None = None,
    ) -> int:
        return await self._call(_calls.release(worker_id, ids, lease_tokens, queue))

    # -- workers --------------------------------------------------------------------------

    async def register_worker(self, worker_id: str, info: dict[str, Any] | None = None
                              ) -> None:
        await self._call(_calls.register_worker(worker_id, info))

    async def heartbeat(self, worker_id: str, ids: Sequence[int] | None = None, *,
                        queue: str | None = None) -> int:
        return await self._call(_calls.heartbeat(worker_id, ids, queue))

    async def deregister_worker(self, worker_id: str, *, queue: str | None = None) -> int:
        return await self._call(_calls.deregister_worker(worker_id, queue))

    # -- operations -----------------------------------------------------------------------

    async def reclaim_orphans(self, max_records: int = 10000, *, queue: str | None = None
                              ) -> int:
        return await self._call(_calls.reclaim_orphans(max_records, queue))

    async def retry_failed(
        self, queue: str, ids: Sequence[int] | None = None, *, error_like: str | None = None,
        finished_after: datetime | None = None, finished_before: datetime | None = None,
        min_attempt: int | None = None,
    ) -> int:
        return await self._call(_calls.retry_failed(queue, ids, error_like, finished_after,
                                                    finished_before, min_attempt))

    async def cancel(
        self, ids: Sequence[int] | None = None, *, queue: str | None = None,
        error_like: str | None = None, min_attempt: int | None = None,
    ) -> int:
        return await self._call(_calls.cancel(ids, queue, error_like, min_attempt))

    async def holds(
        self, id: int, lease_token: int, *, conn: psycopg.AsyncConnection[Any] | None = None,
    ) -> bool:
        return await self._call(_calls.holds(id, lease_token), conn)

    async def run_sql_handler(
        self, queue: str, handler: str, max_records: int = 100,
        time_budget: Duration = timedelta(seconds=10),
        *, conn: psycopg.AsyncConnection[Any] | None = None,
    ) -> list[tuple[int, str, str | None]]:
        return await self._call(
            _calls.run_sql_handler(queue, handler, max_records, time_budget), conn)

    async def latency(self, queue: str, since: Duration = timedelta(minutes=5)
                      ) -> dict[str, Latency]:
        return await self._call(_calls.latency(queue, since))

    async def purge(
        self, queue: str, older_than: Duration | None = None, max_records: int = 100000,
    ) -> int:
        return await self._call(_calls.purge(queue, older_than, max_records))

    async def configure(
        self, *, worker_timeout: Duration | None = None, sweep_limit: int | None = None,
        max_ids: int | None = None, max_error_bytes: int | None = None,
        max_info_bytes: int | None = None, purge_limit: int | None = None,
    ) -> None:
        await self._call(_calls.configure(worker_timeout, sweep_limit, max_ids,
                                          max_error_bytes, max_info_bytes, purge_limit))

    async def grant_queue(self, queue: str, role: str, privileges: Sequence[str]) -> list[str]:
        return await self._call(_calls.grant_queue(queue, role, privileges))

    async def revoke_queue(self, queue: str, role: str, privileges: Sequence[str]
                           ) -> list[str]:
        return await self._call(_calls.revoke_queue(queue, role, privileges))

    async def stats(self) -> list[QueueStats]:
        return await self._call(_calls.stats())

    async def workers(self) -> list[WorkerStatus]:
        return await self._call(_calls.workers())

    async def metrics(self) -> list[Metric]:
        return await self._call(_calls.metrics())

    async def dead_letters(self, queue: str | None = None, max_records: int = 20
                           ) -> list[DeadLetter]:
        return await self._call(_calls.dead_letters(queue, max_records))

    async def stuck_records(self, max_records: int = 100) -> list[StuckRecord]:
        return await self._call(_calls.stuck_records(max_records))

    async def health(
        self, max_xact_age: Duration = timedelta(minutes=5),
        max_pending_age: Duration = timedelta(hours=1),
    ) -> dict[str, Any]:
        return await self._call(_calls.health(max_xact_age, max_pending_age))

    async def schema_version(self) -> int:
        return await self._call(_calls.schema_version())

    async def check_schema(self) -> int:
        return self._schema_checked(await self.schema_version())

    async def run(self, fn: Callable[[psycopg.AsyncConnection[Any]], Awaitable[T]], *,
                  operation: str = "query", idempotent: bool = False,
                  queue: str | None = None,
                  conn: psycopg.AsyncConnection[Any] | None = None) -> T:
        """Runs the coroutine function ``fn`` on a connection of the client, with the same
        retry rules as every call (``QueueClient.run``: once, never retried, on ``conn`` or
        the caller's connection; the first call of the client checks the schema first)."""
        if self._schema_unchecked:
            await self.check_schema()
        return await self._run(fn, operation=operation, idempotent=idempotent, queue=queue,
                               conn=conn)

    async def _run(self, fn: Callable[[psycopg.AsyncConnection[Any]], Awaitable[T]], *,
                   operation: str, idempotent: bool, queue: str | None,
                   conn: psycopg.AsyncConnection[Any] | None) -> T:
        """``run`` without the schema check."""
        own = conn if conn is not None else self._conn
        if own is not None:
            try:
                return await fn(own)
            except psycopg.Error as exc:
                raise translate(exc) from exc
        await self.open()
        pool = self._pool
        assert pool is not None

        async def once(attempt: Attempt) -> T:
            async with pool.connection() as c:
                attempt.sent = True
                try:
                    return await fn(c)
                finally:
                    self._returned(c)

        return await acall_with_retry(once, policy=self.retry, operation=operation,
                                      idempotent=idempotent, queue=queue, log=self._log)


def _share_docstrings() -> None:
    """Each method without a docstring of its own takes that of ``QueueClient``'s method of
    the same name: one text per method, for both clients."""
    for name, method in vars(AsyncQueueClient).items():
        if inspect.isfunction(method) and method.__doc__ is None:
            sync = getattr(QueueClient, name, None)
            if sync is not None and sync.__doc__:
                method.__doc__ = sync.__doc__


_share_docstrings()

__all__ = ["AsyncQueueClient"]
