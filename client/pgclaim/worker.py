"""The worker loop: claim batches, run a handler per record, report outcomes.

``Worker(client, queue, handler)`` registers, listens for wake-ups on ``pgclaim_<queue>`` (with
a polling fallback), claims batches, runs ``handler(record)`` on a thread pool (coroutine
handlers on an event loop), completes successes in batches under their lease tokens, fails the
records whose handler raised, heartbeats while handlers run, reclaims orphans now and then,
and on SIGTERM/SIGINT (or ``stop()``) stops claiming, lets running handlers finish within a
grace period, releases what it did not start and deregisters. A second signal (or
``stop(now=True)``) stops waiting for running handlers (``pgclaim._signals``).

A handler signals an outcome other than success by raising: ``Retry(after=...)`` retries the
record after a delay, ``Fatal(...)`` fails it for good, any other exception fails the attempt
(with the queue's backoff) and its text is kept as the record's ``last_error``.
"""
from __future__ import annotations

import asyncio
import concurrent.futures as cf
import inspect
import json
import logging
import math
import queue as queue_mod
import random
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg

from . import _sql
from ._signals import StopSignals
from .client import MAX_BATCH_SIZE, Claimed, Duration, QueueClient, as_interval
from .errors import NotHolder, OutcomeUnknown, PgclaimError, RecordNotFound, TransientError
from .retry import RetryPolicy, log_extra
from .retry import logger as _default_logger

Handler = Callable[[Claimed], Any] | Callable[[Claimed], Awaitable[Any]]
"""A record handler: a function (or coroutine function) of one ``Claimed`` record."""

#: how long error texts kept in ``last_error`` may be
MAX_ERROR_LENGTH = 2000


class Retry(Exception):
    """Raise from a handler to retry its record after ``after`` (default: the queue's backoff).

    The attempt still counts: a record out of attempts is failed.
    """

    def __init__(self, message: str = "retry requested", *, after: Duration | None = None):
        super().__init__(message)
        self.after = as_interval(after)


class Fatal(Exception):
    """Raise from a handler to fail its record for good, whatever attempts remain."""


@dataclass
class WorkerStats:
    """What a worker did during ``run``."""

    claimed: int = 0
    completed: int = 0
    retried: int = 0
    failed: int = 0
    released: int = 0
    lost: int = 0
    """reports the database refused: the lease had been taken back meanwhile"""
    db_errors: int = 0
    handler_errors: int = 0
    abandoned: int = 0
    """handlers still running when the grace period ran out (their records were released)"""
    started: float = field(default_factory=time.monotonic)


@dataclass(frozen=True)
class _Outcome:
    record: Claimed
    error: str | None = None
    retry_after: Any = None
    fatal: bool = False


def _error_text(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text[:MAX_ERROR_LENGTH]


def _payload_text(payload: Any) -> str:
    return json.dumps(payload, default=str)[:MAX_ERROR_LENGTH]


class Worker:
    """Processes the records of one queue with ``handler`` until stopped.

    ``concurrency`` handlers run at once; ``batch_size`` records are claimed per call (default:
    ``concurrency``; more means records wait locally, their leases kept alive by the
    heartbeat). ``lease`` overrides the queue's lease; ``heartbeat_every`` (seconds) should be
    well under both the lease and the server's ``worker_timeout``. ``poll_interval`` bounds
    the wait when no notification comes; ``reclaim_every`` spaces ``reclaim_orphans`` calls;
    ``grace`` is how long ``stop`` waits for running handlers.

    A handler's failure is logged with the record's id, attempt and the exception's type; its
    text (which may quote the payload) stays in the record's ``last_error``. With
    ``log_payloads=True`` the log line carries the exception's text and the payload as well.
    """

    def __init__(
        self,
        client: QueueClient,
        queue: str,
        handler: Handler,
        *,
        concurrency: int = 4,
        batch_size: int | None = None,
        lease: Duration | None = None,
        heartbeat_every: float = 10.0,
        poll_interval: float = 5.0,
        reclaim_every: float = 60.0,
        grace: float = 30.0,
        worker_id: str | None = None,
        info: dict[str, Any] | None = None,
        listen: bool = True,
        install_signals: bool = True,
        backoff: RetryPolicy | None = None,
        logger: logging.Logger | None = None,
        log_payloads: bool = False,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        self.client = client
        self.queue = queue
        self.handler = handler
        self.concurrency = concurrency
        self.batch_size = batch_size or concurrency
        if not 1 <= self.batch_size <= MAX_BATCH_SIZE:
            raise ValueError(f"batch_size must be between 1 and {MAX_BATCH_SIZE}, "
                             f"got {self.batch_size}")
        self.lease = as_interval(lease)
        self.heartbeat_every = heartbeat_every
        self.poll_interval = poll_interval
        self.reclaim_every = reclaim_every
        self.grace = grace
        self.worker_id = worker_id or client.instance_id
        self.info = {"queue": queue, "concurrency": concurrency, **(info or {})}
        self.listen = listen
        self.install_signals = install_signals
        self.backoff = backoff or RetryPolicy(attempts=1_000_000, base=0.5, cap=15.0,
                                              deadline=None)
        self._log = logger or _default_logger
        self.log_payloads = log_payloads
        self._async = inspect.iscoroutinefunction(handler)
        self.stats = WorkerStats()
        self._stop = threading.Event()
        self._stop_now = threading.Event()  # do not wait for running handlers
        self._wake = threading.Event()
        self._notified = threading.Event()
        self._listening = threading.Event()
        self._done: queue_mod.SimpleQueue[_Outcome] = queue_mod.SimpleQueue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_lock = threading.Lock()
        # Records claimed and not yet reported: the heartbeat keeps their leases alive.
        self._records: dict[int, Claimed] = {}
        self._threads: list[threading.Thread] = []

    # -- public ---------------------------------------------------------------------------

    def stop(self, *, now: bool = False) -> None:
        """Asks the worker to stop: no more claims, running handlers get ``grace`` seconds.

        With ``now=True`` it does not wait for running handlers (nor retry reports): their
        records are released by the deregistration while the handlers themselves go on in
        their threads (their outcomes are dropped), so another worker may start them again.
        """
        if not self._stop.is_set():
            self._info("stopping")
        if now and not self._stop_now.is_set():
            self._info("stopping now: not waiting for running handlers")
            self._stop_now.set()
        self._stop.set()
        self._wake.set()

    @property
    def stopping(self) -> bool:
        """True once ``stop`` was called (or a signal came)."""
        return self._stop.is_set()

    @property
    def listening(self) -> bool:
        """True while the LISTEN connection is up."""
        return self._listening.is_set()

    def run(self, *, until_empty: bool = False) -> WorkerStats:
        """Runs until stopped (or, with ``until_empty``, until no record is due and none runs).

        Returns what it did. Takes SIGTERM/SIGINT when called from the main thread (and
        ``install_signals``): the first stops the worker, a second stops it now
        (``stop(now=True)``); the previous handlers are restored on return.
        """
        executor = cf.ThreadPoolExecutor(self.concurrency,
                                         thread_name_prefix=f"pgclaim-{self.queue}")
        inflight: dict[int, cf.Future[_Outcome]] = {}
        signals = StopSignals(self._on_first_signal, self._on_second_signal,
                              enabled=self.install_signals)
        with signals:
            try:
                if not self._register():
                    return self.stats
                self._start_thread(self._heartbeat_loop, "heartbeat")
                if self.listen:
                    self._start_thread(self._listen_loop, "listen")
                self._main_loop(executor, inflight, until_empty)
                self._shutdown(inflight, self._records)
            finally:
                self._stop.set()
                self._wake.set()
                for t in self._threads:
                    t.join(timeout=5)
                executor.shutdown(wait=False, cancel_futures=True)
                if self._loop is not None:
                    self._loop.call_soon_threadsafe(self._loop.stop)
        return self.stats

    # -- logging --------------------------------------------------------------------------

    def _extra(self, **fields: Any) -> dict[str, Any]:
        return log_extra(self.queue, worker_id=self.worker_id, **fields)

    def _info(self, msg: str, *args: Any, **fields: Any) -> None:
        self._log.info("pgclaim worker %s: " + msg, self.worker_id, *args,
                       extra=self._extra(**fields))

    def _warn(self, msg: str, *args: Any, **fields: Any) -> None:
        self._log.warning("pgclaim worker %s: " + msg, self.worker_id, *args,
                          extra=self._extra(**fields))

    # -- signals --------------------------------------------------------------------------

    def _on_first_signal(self, name: str) -> None:
        self._info("received %s", name)
        self.stop()

    def _on_second_signal(self, name: str) -> None:
        self._info("received %s again", name)
        self.stop(now=True)

    # -- helper threads -------------------------------------------------------------------

    def _start_thread(self, target: Callable[[], None], name: str) -> None:
        t = threading.Thread(target=target, name=f"pgclaim-{name}-{self.queue}", daemon=True)
        t.start()
        self._threads.append(t)

    def _heartbeat_loop(self) -> None:
        while not self._stop.wait(self.heartbeat_every):
            try:
                # Only the records this worker knows it holds: one whose claim reply was
                # lost must not be kept alive by these heartbeats.
                self.client.heartbeat(self.worker_id, list(self._records), queue=self.queue)
            except PgclaimError as exc:
                self.stats.db_errors += 1
                self._warn("heartbeat failed: %s", exc, sqlstate=exc.sqlstate)

    def _listen_loop(self) -> None:
        target = self.client.conninfo()
        if target is None:
            self._info("no pool to listen from: polling every %.1fs", self.poll_interval)
            return
        conninfo, kwargs = target
        failures = 0
        channel = _sql.channel(self.queue)
        while not self._stop.is_set():
            try:
                with psycopg.connect(conninfo, **kwargs) as conn:
                    conn.execute(_sql.listen(channel))
                    self._listening.set()
                    if failures:
                        self._info("listening again on %s", channel, operation="listen")
                    failures = 0
                    # Notifications sent while we were away are lost: look once.
                    self._notified.set()
                    self._wake.set()
                    while not self._stop.is_set():
                        for _ in conn.notifies(timeout=0.25):
                            self._notified.set()
                            self._wake.set()
            except psycopg.Error as exc:
                self._listening.clear()
                failures += 1
                wait = self.backoff.backoff(failures)
                self._warn("listen connection lost, reconnect %d in %.1fs: %s", failures,
                           wait, str(exc).strip(), operation="listen")
                self._stop.wait(wait)
        self._listening.clear()

    # -- main loop ------------------------------------------------------------------------

    def _register(self) -> bool:
        failures = 0
        while not self._stop.is_set():
            try:
                self.client.check_schema()  # SchemaMismatch or SchemaMissing: not waited for
                self.client.register_worker(self.worker_id, self.info)
                self._info("registered (concurrency %d, batch %d)", self.concurrency,
                           self.batch_size)
                return True
            except TransientError as exc:
                failures += 1
                self.stats.db_errors += 1
                wait = self.backoff.backoff(failures)
                self._warn("register failed, retry %d in %.1fs: %s", failures, wait, exc,
                           sqlstate=exc.sqlstate)
                self._stop.wait(wait)
        return False

    def _run_handler(self, record: Claimed) -> _Outcome:
        try:
            result = self.handler(record)
            if inspect.isawaitable(result):
                loop = self._event_loop()
                asyncio.run_coroutine_threadsafe(_as_coroutine(result), loop).result()
            return _Outcome(record)
        except Retry as exc:
            return _Outcome(record, error=_error_text(exc), retry_after=exc.after)
        except Fatal as exc:
            return _Outcome(record, error=_error_text(exc), fatal=True)
        except Exception as exc:  # noqa: BLE001 - a handler's error fails its record only
            self.stats.handler_errors += 1
            detail = (f"{_error_text(exc)}; payload {_payload_text(record.payload)}"
                      if self.log_payloads else type(exc).__name__)
            self._log.info("pgclaim worker %s: handler failed on record %d (attempt %d): %s",
                           self.worker_id, record.id, record.attempt, detail,
                           extra=self._extra(record_id=record.id, attempt=record.attempt))
            return _Outcome(record, error=_error_text(exc))

    def _event_loop(self) -> asyncio.AbstractEventLoop:
        with self._loop_lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="pgclaim-asyncio",
                                 daemon=True).start()
                self._loop = loop
            return self._loop

    def _on_done(self, future: cf.Future[_Outcome]) -> None:
        if not future.cancelled():
            self._done.put(future.result())
            self._wake.set()

    def _main_loop(self, executor: cf.ThreadPoolExecutor,
                   inflight: dict[int, cf.Future[_Outcome]], until_empty: bool) -> None:
        successes: list[Claimed] = []
        failures: list[_Outcome] = []
        limit = max(self.concurrency, self.batch_size)
        threshold = limit - math.ceil(self.batch_size / 2)
        idle_until = 0.0
        next_reclaim = time.monotonic() + self.reclaim_every * random.random()
        db_failures = 0
        while not self._stop.is_set():
            self._collect(inflight, successes, failures)
            if self._notified.is_set() or (until_empty and not inflight):
                self._notified.clear()
                idle_until = 0.0
            now = time.monotonic()
            ok = self._report(successes, failures)
            if ok and now >= next_reclaim:
                ok = self._reclaim()
                next_reclaim = now + self.reclaim_every
            claimed_full = empty = False
            if ok and len(inflight) <= threshold and now >= idle_until:
                want = min(self.batch_size, limit - len(inflight))
                records = self._claim(want)
                if records is None:
                    ok = False
                else:
                    for record in records:
                        future = executor.submit(self._run_handler, record)
                        inflight[record.id] = future
                        self._records[record.id] = record
                        future.add_done_callback(self._on_done)
                    claimed_full = len(records) == want
                    empty = not records
                    if not claimed_full:
                        idle_until = now + self.poll_interval
            if not ok:
                db_failures += 1
                self._stop.wait(self.backoff.backoff(db_failures))
                continue
            db_failures = 0
            if until_empty and empty and not inflight and not successes and not failures:
                self._info("no record due: done")
                return
            if claimed_full and len(inflight) <= threshold:
                continue
            timeout = idle_until - now if idle_until > now else self.poll_interval
            self._wake.wait(min(timeout, 1.0) if inflight else timeout)
            self._wake.clear()

    def _collect(self, inflight: dict[int, cf.Future[_Outcome]],
                 successes: list[Claimed], failures: list[_Outcome]) -> None:
        while True:
            try:
                outcome = self._done.get_nowait()
            except queue_mod.Empty:
                break
            inflight.pop(outcome.record.id, None)
            if outcome.error is None:
                successes.append(outcome.record)
            else:
                failures.append(outcome)

    def _claim(self, want: int) -> list[Claimed] | None:
        try:
            records = self.client.claim(self.queue, self.worker_id, want, self.lease)
        except OutcomeUnknown as exc:
            self.stats.db_errors += 1
            self._warn("claim outcome unknown (its records come back after the lease): %s",
                       exc, operation="claim")
            return None
        except PgclaimError as exc:
            # Transient, or an error the worker cannot fix (queue dropped, rights revoked):
            # either way it backs off and tries again rather than exit.
            self.stats.db_errors += 1
            self._warn("claim failed: %s", exc, operation="claim", sqlstate=exc.sqlstate)
            return None
        self.stats.claimed += len(records)
        return records

    def _reclaim(self) -> bool:
        try:
            n = self.client.reclaim_orphans(queue=self.queue)
        except PgclaimError as exc:
            self.stats.db_errors += 1
            self._warn("reclaim_orphans failed: %s", exc, operation="reclaim_orphans",
                       sqlstate=exc.sqlstate)
            return False
        if n:
            self._info("took back %d orphaned record(s)", n, operation="reclaim_orphans")
        return True

    def _report(self, successes: list[Claimed], failures: list[_Outcome]) -> bool:
        """Sends the outcomes gathered so far; keeps those a transient error held back."""
        if successes:
            batch = list(successes)
            try:
                n = self.client.complete(self.worker_id, [r.id for r in batch],
                                         [r.lease_token for r in batch], queue=self.queue)
            except PgclaimError as exc:
                self.stats.db_errors += 1
                self._warn("complete of %d record(s) failed, kept for later: %s", len(batch),
                           exc, operation="complete", sqlstate=exc.sqlstate)
                return False
            del successes[:len(batch)]
            for r in batch:
                self._records.pop(r.id, None)
            self.stats.completed += n
            if n < len(batch):
                self.stats.lost += len(batch) - n
                self._warn("%d of %d record(s) were no longer held (lease taken back)",
                           len(batch) - n, len(batch), operation="complete")
        while failures:
            outcome = failures[0]
            record = outcome.record
            try:
                status = self.client.fail(
                    self.worker_id, record.id, outcome.error or "", retry_after=outcome.retry_after,
                    lease_token=record.lease_token, fatal=outcome.fatal, queue=self.queue)
            except (NotHolder, RecordNotFound) as exc:
                self.stats.lost += 1
                self._warn("fail of record %d refused: %s", record.id, exc, operation="fail")
            except OutcomeUnknown as exc:
                self._warn("fail of record %d outcome unknown: %s", record.id, exc,
                           operation="fail")
            except PgclaimError as exc:
                self.stats.db_errors += 1
                self._warn("fail of record %d failed, kept for later: %s", record.id, exc,
                           operation="fail", sqlstate=exc.sqlstate)
                return False
            else:
                if status == "failed":
                    self.stats.failed += 1
                else:
                    self.stats.retried += 1
            failures.pop(0)
            self._records.pop(record.id, None)
        return True

    # -- shutdown -------------------------------------------------------------------------

    def _shutdown(self, inflight: dict[int, cf.Future[_Outcome]],
                  records: dict[int, Claimed]) -> None:
        unstarted = [records[i] for i, future in list(inflight.items()) if future.cancel()]
        for record in unstarted:
            del inflight[record.id]
        if unstarted:
            try:
                n = self.client.release(self.worker_id, [r.id for r in unstarted],
                                        [r.lease_token for r in unstarted], queue=self.queue)
                self.stats.released += n
                self._info("released %d record(s) it had not started", n, operation="release")
            except PgclaimError as exc:
                self._warn("release failed (the records come back after their lease): %s", exc,
                           operation="release")
        if inflight and not self._stop_now.is_set():
            self._info("waiting up to %.1fs for %d running handler(s)", self.grace,
                       len(inflight))
            # Woken by each handler's end and by stop(now=True).
            grace_end = time.monotonic() + self.grace
            while (not self._stop_now.is_set() and time.monotonic() < grace_end
                   and not all(f.done() for f in inflight.values())):
                self._wake.wait(max(0.0, grace_end - time.monotonic()))
                self._wake.clear()
        successes: list[Claimed] = []
        failures: list[_Outcome] = []
        self._collect(inflight, successes, failures)
        deadline = time.monotonic() + max(self.grace, 5.0)
        tries = 0
        while not self._report(successes, failures):
            tries += 1
            if self._stop_now.is_set() or time.monotonic() >= deadline:
                break
            self._stop_now.wait(self.backoff.backoff(tries))
        if successes or failures:
            self._warn("could not report %d outcome(s): they come back after the lease",
                       len(successes) + len(failures))
        if inflight:
            self.stats.abandoned = len(inflight)
            self._warn("%d handler(s) still running, not waited for: their records are "
                       "released", len(inflight))
        try:
            n = self.client.deregister_worker(self.worker_id, queue=self.queue)
            self.stats.released += n
            self._info("deregistered (released %d)", n, operation="deregister_worker")
        except PgclaimError as exc:
            self._warn("deregister failed: %s", exc, operation="deregister_worker")


async def _as_coroutine(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


__all__ = ["Fatal", "Handler", "Retry", "Worker", "WorkerStats"]
