"""The worker loop: claim batches, run a handler per record, report outcomes in batches.

``Worker(client, queue, handler)`` registers, listens for wake-ups on ``pgclaim_<queue>`` (with
a polling fallback), claims batches, runs ``handler(record)`` on a thread pool (coroutine
handlers on an event loop), reports outcomes in batches under their lease tokens (successes
with one ``complete``, failures with one ``fail_batch``), heartbeats the records it holds,
reclaims orphans now and then, and on SIGTERM/SIGINT (or ``stop()``) stops claiming, releases
what it did not start, lets running handlers finish within a grace period and deregisters.

A handler signals an outcome other than success by raising: ``Retry(after=...)`` retries the
record after a delay, ``Fatal(...)`` fails it for good, any other exception fails the attempt
(with the queue's backoff) and its text is kept as the record's ``last_error``.

States
------
``Worker.state`` is one ``WorkerState``; the loop moves between them so::

    STARTING ──> WAITING <──> CLAIMING <──> RUNNING ──> DRAINING ──> STOPPING ──> STOPPED
                    \\____________ BACKING_OFF ___________/

``STARTING``
    checks the schema version (``SchemaMismatch`` or ``SchemaMissing`` end ``run``) and
    registers, waiting with backoff for a database it cannot reach; then starts the heartbeat
    and the listener and goes to ``WAITING``.
``WAITING``
    holds no record. Claims when a notification comes (but no sooner than
    ``min_wake_interval`` after a claim that found nothing), when the poll timer runs out
    (``poll_interval`` after a claim that got less than it asked for), or at once when the
    last claim got all it asked for; runs ``reclaim_orphans`` every ``reclaim_every``.
``CLAIMING``
    one ``claim_batch`` call for up to ``batch_size`` records (fewer when fewer slots are
    free). Records go to the handler pool and into the set the heartbeat keeps alive; then
    ``RUNNING``, or ``WAITING`` when it got none (noting the time: a notification cannot
    make it claim again before ``min_wake_interval`` has passed since).
``RUNNING``
    holds records: handlers running or queued for a thread, outcomes not yet reported. It
    claims again when half a batch of slots is free and a claim is due (as in ``WAITING``). It
    reports the outcomes gathered so far when no handler is left running, or when the oldest
    has waited ``report_delay``: successes with one ``complete`` and failures with one
    ``fail_batch``, each under the records' lease tokens. A record stays in the heartbeat set
    until its outcome is reported; a heartbeat and a report never cover the same record at
    once (the report waits for the heartbeat under way, the heartbeat leaves out the records
    of a report under way). Back to ``WAITING`` once nothing is held.
``BACKING_OFF``
    a claim, a report or ``reclaim_orphans`` failed (a transient error, or one the worker
    cannot fix such as revoked rights): it waits ``backoff`` (longer after each failure in
    a row), keeping its outcomes for the next report while the heartbeat keeps their leases,
    then carries on. A database error never ends ``run``.
``DRAINING``
    ``stop()`` or the first SIGTERM/SIGINT: claims nothing more, releases the records whose
    handler had not started, waits up to ``grace`` for the running handlers (reporting as
    above), then reports what is left, trying again until ``max(grace, 5 s)`` has passed.
    ``stop(now=True)`` or a second signal ends the wait for handlers and the retries.
``STOPPING``
    stops the heartbeat and the listener and deregisters, which releases whatever is still
    held (records of handlers still running, outcomes that could not be reported).
``STOPPED``
    ``run`` has returned.

Only records the worker knows it holds are heartbeaten: a record whose claim reply was lost
is not kept alive and comes back when its lease expires.
"""
from __future__ import annotations

import asyncio
import concurrent.futures as cf
import enum
import inspect
import json
import logging
import math
import queue as queue_mod
import random
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from . import _sql
from ._signals import StopSignals
from .client import MAX_BATCH_SIZE, Claimed, Duration, QueueClient, as_interval
from .errors import OutcomeUnknown, PgclaimError, TransientError
from .retry import RetryPolicy, log_extra
from .retry import logger as _default_logger

Handler = Callable[[Claimed], Any] | Callable[[Claimed], Awaitable[Any]]
"""A record handler: a function (or coroutine function) of one ``Claimed`` record."""

#: how long error texts kept in ``last_error`` may be
MAX_ERROR_LENGTH = 2000


class Retry(Exception):
    """Raise from a handler to retry its record after ``after`` (default: the queue's backoff).

    ``after`` counts from the moment the failure is reported. The attempt still counts: a
    record out of attempts is failed.
    """

    def __init__(self, message: str = "retry requested", *, after: Duration | None = None):
        super().__init__(message)
        self.after = as_interval(after)
        if self.after is not None and self.after < timedelta(0):
            raise ValueError(f"Retry after must not be negative, got {self.after}")


class Fatal(Exception):
    """Raise from a handler to fail its record for good, whatever attempts remain."""


class WorkerState(enum.Enum):
    """Where a ``Worker`` is in its life (module docstring: what each state does)."""

    STARTING = "starting"
    """checking the schema version, registering"""
    WAITING = "waiting"
    """holding nothing, waiting for a notification or the poll timer"""
    CLAIMING = "claiming"
    """a ``claim_batch`` call is under way"""
    RUNNING = "running"
    """holding records: handlers running, outcomes waiting for their report"""
    BACKING_OFF = "backing off"
    """a database call failed: waiting before the next try"""
    DRAINING = "draining"
    """stop requested: releasing what did not start, waiting for running handlers"""
    STOPPING = "stopping"
    """deregistering"""
    STOPPED = "stopped"
    """``run`` has returned"""


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
    retry_after: timedelta | None = None
    fatal: bool = False


@dataclass
class _Loop:
    """The main loop's bookkeeping, in one place."""

    limit: int
    """the most records held at once: max(concurrency, batch_size)"""
    threshold: int
    """claim only while at most this many handlers run (half a batch of slots free)"""
    inflight: dict[int, cf.Future[_Outcome]] = field(default_factory=dict)
    """records whose handler runs or waits for a thread"""
    done: list[_Outcome] = field(default_factory=list)
    """outcomes not reported yet, oldest first"""
    done_since: float = 0.0
    """when the oldest of ``done`` arrived"""
    next_claim: float = 0.0
    """no claim before this time (the poll timer), unless woken; 0: as soon as slots free"""
    empty_at: float | None = None
    """when the last claim came back empty (None: it found records)"""
    next_reclaim: float = 0.0
    db_failures: int = 0
    """database errors in a row (the backoff grows with them)"""
    held_back: bool = False
    """outcomes wait for a heartbeat under way to end (it wakes the loop)"""

    def room(self) -> bool:
        """Whether half a batch of slots is free."""
        return len(self.inflight) <= self.threshold

    def wake_floor(self, min_wake_interval: float) -> float:
        """The earliest time a notification may make the worker claim."""
        return 0.0 if self.empty_at is None else self.empty_at + min_wake_interval

    def report_due(self, now: float, report_delay: float) -> bool:
        """Whether the gathered outcomes go out now: no handler left running, or the oldest
        has waited ``report_delay``."""
        return bool(self.done) and (not self.inflight or now >= self.done_since + report_delay)


def _error_text(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".replace("\x00", "\\x00")  # text cannot hold NUL
    return text[:MAX_ERROR_LENGTH]


def _payload_text(payload: Any) -> str:
    return json.dumps(payload, default=str)[:MAX_ERROR_LENGTH]


def _chunks(items: Sequence[_Outcome]) -> list[list[_Outcome]]:
    return [list(items[i:i + MAX_BATCH_SIZE]) for i in range(0, len(items), MAX_BATCH_SIZE)]


class Worker:
    """Processes the records of one queue with ``handler`` until stopped.

    ``concurrency`` handlers run at once; ``batch_size`` records are claimed per call (default:
    ``concurrency``; more means records wait locally, their leases kept alive by the
    heartbeat). ``lease`` overrides the queue's lease; ``heartbeat_every`` (seconds) should be
    well under both the lease and the server's ``worker_timeout``. ``poll_interval`` bounds
    the wait when no notification comes; ``min_wake_interval`` is the least time between a
    claim that found nothing and the next claim a notification prompts (so a flood of
    notifications costs an idle worker at most one claim per ``min_wake_interval``);
    ``reclaim_every`` spaces ``reclaim_orphans`` calls; ``report_delay`` is how long an
    outcome may wait for others to share its report while handlers still run; ``grace`` is
    how long ``stop`` waits for running handlers.

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
        min_wake_interval: float = 0.05,
        reclaim_every: float = 60.0,
        report_delay: float = 0.1,
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
        for name, value in (("min_wake_interval", min_wake_interval),
                            ("report_delay", report_delay), ("grace", grace)):
            if value < 0:
                raise ValueError(f"{name} must not be negative, got {value}")
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
        self.min_wake_interval = min_wake_interval
        self.reclaim_every = reclaim_every
        self.report_delay = report_delay
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
        self._state = WorkerState.STARTING
        self._stop = threading.Event()      # no more claims: drain and deregister
        self._stop_now = threading.Event()  # do not wait for running handlers
        self._halt = threading.Event()      # the heartbeat and listener threads end
        self._wake = threading.Event()      # the main loop has something to look at
        self._notified = threading.Event()  # a notification came (or the listener reconnected)
        self._listening = threading.Event()
        self._done: queue_mod.SimpleQueue[_Outcome] = queue_mod.SimpleQueue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_lock = threading.Lock()
        # Records claimed and not yet reported: the heartbeat keeps their leases alive. A
        # heartbeat and a report of this worker never update the same records at once: they
        # lock rows in different orders, and the two would deadlock (found by the chaos
        # suite's SIGSTOP row: the deadlock detector's second made 1 s leases lapse).
        self._records: dict[int, Claimed] = {}
        self._records_lock = threading.Lock()
        self._heartbeat_ended = threading.Condition(self._records_lock)
        self._reporting: set[int] = set()        # ids in a report under way
        self._beating: frozenset[int] = frozenset()  # ids in a heartbeat under way
        self._threads: list[threading.Thread] = []

    # -- public ---------------------------------------------------------------------------

    def stop(self, *, now: bool = False) -> None:
        """Asks the worker to stop: no more claims, the records not started are released,
        running handlers get ``grace`` seconds and the outcomes are reported.

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
    def state(self) -> WorkerState:
        """The state the worker is in (``WorkerState``)."""
        return self._state

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
        self._state = WorkerState.STARTING
        executor = cf.ThreadPoolExecutor(self.concurrency,
                                         thread_name_prefix=f"pgclaim-{self.queue}")
        limit = max(self.concurrency, self.batch_size)
        loop = _Loop(limit=limit, threshold=limit - math.ceil(self.batch_size / 2),
                     next_reclaim=time.monotonic() + self.reclaim_every * random.random())
        signals = StopSignals(self._on_first_signal, self._on_second_signal,
                              enabled=self.install_signals)
        with signals:
            try:
                if not self._register():
                    return self.stats
                self._start_thread(self._heartbeat_loop, "heartbeat")
                if self.listen:
                    self._start_thread(self._listen_loop, "listen")
                self._main_loop(executor, loop, until_empty)
                self._drain(loop)
                self._deregister()
            finally:
                self._stop.set()
                self._halt.set()
                self._wake.set()
                for t in self._threads:
                    t.join(timeout=5)
                executor.shutdown(wait=False, cancel_futures=True)
                if self._loop is not None:
                    self._loop.call_soon_threadsafe(self._loop.stop)
                self._state = WorkerState.STOPPED
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

    # -- the records held -----------------------------------------------------------------

    def _hold(self, records: Sequence[Claimed]) -> None:
        with self._records_lock:
            for record in records:
                self._records[record.id] = record

    def _let_go(self, records: Sequence[Claimed]) -> None:
        with self._records_lock:
            for record in records:
                self._records.pop(record.id, None)

    def _reserve(self, records: Sequence[Claimed], wait: float = 0.0) -> list[Claimed]:
        """Marks the records a report is about to send, leaving out those in a heartbeat under
        way (after waiting up to ``wait`` seconds for it to end); returns the marked ones."""
        deadline = time.monotonic() + wait
        with self._heartbeat_ended:
            while any(r.id in self._beating for r in records):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._heartbeat_ended.wait(remaining)
            ready = [r for r in records if r.id not in self._beating]
            self._reporting.update(r.id for r in ready)
        return ready

    def _unreserve(self, records: Sequence[Claimed]) -> None:
        with self._records_lock:
            self._reporting.difference_update(r.id for r in records)

    def _heartbeat(self) -> None:
        """One heartbeat for the records held, except those in a report under way (which
        ends their leases, or leaves them to the next heartbeat if it fails)."""
        with self._records_lock:
            ids = [i for i in self._records if i not in self._reporting]
            self._beating = frozenset(ids)
        try:
            # Only the records this worker knows it holds: one whose claim reply was lost
            # must not be kept alive by these heartbeats.
            self.client.heartbeat(self.worker_id, ids, queue=self.queue)
        finally:
            with self._heartbeat_ended:
                self._beating = frozenset()
                self._heartbeat_ended.notify_all()
            self._wake.set()  # a report held back for this heartbeat may go now

    # -- helper threads -------------------------------------------------------------------

    def _start_thread(self, target: Callable[[], None], name: str) -> None:
        t = threading.Thread(target=target, name=f"pgclaim-{name}-{self.queue}", daemon=True)
        t.start()
        self._threads.append(t)

    def _heartbeat_loop(self) -> None:
        # Runs until the worker deregisters, draining included: a handler finishing within
        # ``grace`` keeps its lease even when ``grace`` is longer than the lease.
        while not self._halt.wait(self.heartbeat_every):
            try:
                self._heartbeat()
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
                            # One wake-up until the main loop takes it: a flood of
                            # notifications does not spin the loop.
                            if not self._notified.is_set():
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

    # -- STARTING -------------------------------------------------------------------------

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

    # -- handlers -------------------------------------------------------------------------

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

    def _collect(self, loop: _Loop, now: float) -> None:
        """Moves the outcomes of finished handlers to ``loop.done``."""
        while True:
            try:
                outcome = self._done.get_nowait()
            except queue_mod.Empty:
                break
            loop.inflight.pop(outcome.record.id, None)
            if not loop.done:
                loop.done_since = now
            loop.done.append(outcome)

    # -- WAITING, CLAIMING, RUNNING, BACKING_OFF ------------------------------------------

    def _main_loop(self, executor: cf.ThreadPoolExecutor, loop: _Loop,
                   until_empty: bool) -> None:
        while not self._stop.is_set():
            now = time.monotonic()
            self._collect(loop, now)
            if until_empty and not loop.inflight:
                loop.next_claim = 0.0
            elif (self._notified.is_set() and loop.room()
                  and now >= loop.wake_floor(self.min_wake_interval)):
                # Taken only when it can lead to a claim: left set, it keeps the listener
                # from waking the loop again for every notification of a flood.
                self._notified.clear()
                loop.next_claim = 0.0
            ok = True
            if loop.report_due(now, self.report_delay):
                ok = self._report(loop)
            if ok and now >= loop.next_reclaim:
                ok = self._reclaim()
                loop.next_reclaim = now + self.reclaim_every
            claimed_full = False
            if ok and loop.room() and now >= loop.next_claim:
                want = min(self.batch_size, loop.limit - len(loop.inflight))
                self._state = WorkerState.CLAIMING
                records = self._claim(want)
                ended = time.monotonic()
                if records is None:
                    ok = False
                else:
                    self._hold(records)
                    for record in records:
                        future = executor.submit(self._run_handler, record)
                        loop.inflight[record.id] = future
                        future.add_done_callback(self._on_done)
                    claimed_full = len(records) == want
                    loop.empty_at = None if records else ended
                    if not claimed_full:
                        loop.next_claim = ended + self._idle_wait()
            if not ok:
                loop.db_failures += 1
                self._state = WorkerState.BACKING_OFF
                self._stop.wait(self.backoff.backoff(loop.db_failures))
                continue
            loop.db_failures = 0
            held = bool(loop.inflight or loop.done)
            self._state = WorkerState.RUNNING if held else WorkerState.WAITING
            if until_empty and loop.empty_at is not None and not held:
                self._info("no record due: done")
                return
            if claimed_full and loop.room():
                continue
            self._wake.wait(max(0.0, self._next_deadline(loop) - time.monotonic()))
            self._wake.clear()

    def _next_deadline(self, loop: _Loop) -> float:
        """When the loop has something to do unless woken before (by a handler's end, a
        notification or ``stop``): a claim, a report, or at the latest ``poll_interval``
        from now (a reclaim that fell due meanwhile runs then)."""
        deadline = time.monotonic() + self.poll_interval
        if loop.room():
            deadline = min(deadline, loop.next_claim)
            if self._notified.is_set():
                deadline = min(deadline, loop.wake_floor(self.min_wake_interval))
        if loop.done and loop.inflight and not loop.held_back:
            deadline = min(deadline, loop.done_since + self.report_delay)
        return deadline

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

    def _idle_wait(self) -> float:
        """How long to wait before the next claim after one that got less than it asked for:
        ``poll_interval``, or less when ``next_eligible`` says a record becomes claimable
        sooner (a due time, a rate limit's next token), but at least ``min_wake_interval``.
        Notifications still wake the loop."""
        try:
            at = self.client.next_eligible(self.queue)
        except PgclaimError:
            return self.poll_interval  # a failing database shows on the next claim
        if at is None:
            return self.poll_interval
        delay = (at - datetime.now(UTC)).total_seconds()
        return min(self.poll_interval, max(delay, self.min_wake_interval))

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

    def _report(self, loop: _Loop, wait: float = 0.0) -> bool:
        """Reports the outcomes in ``loop.done``: successes with ``complete``, failures with
        ``fail_batch`` (one call each, per ``MAX_BATCH_SIZE``), under their lease tokens.

        Reported outcomes leave ``loop.done`` and the heartbeat set. Outcomes whose records a
        heartbeat is extending at that moment are held back (``loop.held_back``; ``wait``
        seconds are waited for it first); on a database error the rest stay for the next try
        and it returns False.
        """
        ready = {r.id for r in self._reserve([o.record for o in loop.done], wait)}
        outcomes = [o for o in loop.done if o.record.id in ready]
        loop.held_back = len(outcomes) < len(loop.done)
        try:
            return self._send(loop.done, outcomes)
        finally:
            self._unreserve([o.record for o in outcomes])

    def _send(self, done: list[_Outcome], outcomes: list[_Outcome]) -> bool:
        """Sends ``outcomes`` (part of ``done``); those reported leave ``done``."""
        successes = [o for o in outcomes if o.error is None]
        failures = [o for o in outcomes if o.error is not None]
        for batch in _chunks(successes):
            records = [o.record for o in batch]
            try:
                n = self.client.complete(self.worker_id, [r.id for r in records],
                                         [r.lease_token for r in records], queue=self.queue)
            except PgclaimError as exc:
                self.stats.db_errors += 1
                self._warn("complete of %d record(s) failed, kept for later: %s",
                           len(records), exc, operation="complete", sqlstate=exc.sqlstate)
                return False
            self._reported(done, batch)
            self.stats.completed += n
            if n < len(records):
                self.stats.lost += len(records) - n
                self._warn("%d of %d record(s) were no longer held (lease taken back)",
                           len(records) - n, len(records), operation="complete")
        for batch in _chunks(failures):
            records = [o.record for o in batch]
            retry_after = [o.retry_after for o in batch]
            fatal = [o.fatal for o in batch]
            try:
                statuses = self.client.fail_batch(
                    self.worker_id, records, [o.error or "" for o in batch],
                    retry_after=retry_after if any(a is not None for a in retry_after) else None,
                    fatal=fatal if any(fatal) else None, queue=self.queue)
            except PgclaimError as exc:
                self.stats.db_errors += 1
                self._warn("fail_batch of %d record(s) failed, kept for later: %s",
                           len(records), exc, operation="fail_batch", sqlstate=exc.sqlstate)
                return False
            self._reported(done, batch)
            failed = sum(1 for s in statuses.values() if s == "failed")
            self.stats.failed += failed
            self.stats.retried += len(statuses) - failed
            if len(statuses) < len(records):
                self.stats.lost += len(records) - len(statuses)
                self._warn("%d of %d failed record(s) were no longer held (lease taken back)",
                           len(records) - len(statuses), len(records), operation="fail_batch")
        return True

    def _reported(self, done: list[_Outcome], batch: list[_Outcome]) -> None:
        ids = {o.record.id for o in batch}
        done[:] = [o for o in done if o.record.id not in ids]
        self._let_go([o.record for o in batch])

    # -- DRAINING, STOPPING ---------------------------------------------------------------

    def _drain(self, loop: _Loop) -> None:
        """Releases the records not started, waits for running handlers (up to ``grace``,
        unless stopping now) while reporting, then reports what is left."""
        self._state = WorkerState.DRAINING
        self._stop.set()  # after until_empty too: the listener ends, nothing more is claimed
        unstarted = [record_id for record_id, future in list(loop.inflight.items())
                     if future.cancel()]
        for record_id in unstarted:
            del loop.inflight[record_id]
        with self._records_lock:
            records = [self._records[i] for i in unstarted if i in self._records]
        if records:
            ready = self._reserve(records, wait=5.0)  # deregistering releases any left out
            try:
                n = self.client.release(self.worker_id, [r.id for r in ready],
                                        [r.lease_token for r in ready], queue=self.queue)
                self.stats.released += n
                self._info("released %d record(s) it had not started", n, operation="release")
            except PgclaimError as exc:
                self._warn("release failed (deregistering releases them): %s", exc,
                           operation="release")
            finally:
                self._unreserve(ready)
            self._let_go(records)
        grace_end = time.monotonic() + self.grace
        if loop.inflight and not self._stop_now.is_set():
            self._info("waiting up to %.1fs for %d running handler(s)", self.grace,
                       len(loop.inflight))
        reporting = True
        while True:
            now = time.monotonic()
            self._collect(loop, now)
            if not loop.inflight or self._stop_now.is_set() or now >= grace_end:
                break
            if reporting and loop.report_due(now, self.report_delay):
                reporting = self._report(loop)  # on failure: once more at the end
            deadline = grace_end
            if reporting and loop.done and not loop.held_back:
                deadline = min(deadline, loop.done_since + self.report_delay)
            self._wake.wait(max(0.0, deadline - now))
            self._wake.clear()
        deadline = time.monotonic() + max(self.grace, 5.0)
        tries = 0
        while loop.done:
            # waits for a heartbeat under way to end rather than hold outcomes back
            if self._report(loop, wait=max(0.0, deadline - time.monotonic())):
                if loop.held_back and time.monotonic() < deadline:
                    continue
                break
            tries += 1
            if self._stop_now.is_set() or time.monotonic() >= deadline:
                break
            self._stop_now.wait(self.backoff.backoff(tries))
        if loop.done:
            self._warn("could not report %d outcome(s): deregistering releases them",
                       len(loop.done))
        if loop.inflight:
            self.stats.abandoned = len(loop.inflight)
            self._warn("%d handler(s) still running, not waited for: their records are "
                       "released", len(loop.inflight))

    def _deregister(self) -> None:
        """Stops the heartbeat (a heartbeat after the deregistration would register the
        worker again) and deregisters, releasing whatever is still held."""
        self._state = WorkerState.STOPPING
        self._halt.set()
        for t in self._threads:
            t.join(timeout=5)
        try:
            n = self.client.deregister_worker(self.worker_id, queue=self.queue)
            self.stats.released += n
            self._info("deregistered (released %d)", n, operation="deregister_worker")
        except PgclaimError as exc:
            self._warn("deregister failed: %s", exc, operation="deregister_worker")


async def _as_coroutine(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


__all__ = ["Fatal", "Handler", "Retry", "Worker", "WorkerState", "WorkerStats"]
