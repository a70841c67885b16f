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
    and goes to ``WAITING`` (the listener starts the first time the poll timer runs, see
    ``Worker``).
``WAITING``
    holds no record. Claims when a notification comes (but no sooner than
    ``min_wake_interval`` after two claims in a row that found nothing), when the poll timer
    runs out (``poll_interval`` after a claim that got less than it asked for), or at once
    when the last claim got all it asked for; runs ``reclaim_orphans`` every ``reclaim_every``.
``CLAIMING``
    one ``claim_batch`` call for up to ``batch_size`` records (fewer when fewer slots are
    free). Records go to the handler pool and into the set the heartbeat keeps alive; then
    ``RUNNING``, or ``WAITING`` when it got none (noting the time when the claim before it
    found nothing too: a notification cannot make it claim again before
    ``min_wake_interval`` has passed since).
``RUNNING``
    holds records: handlers running or queued for a thread, outcomes not yet reported. It
    claims again when half a batch of slots is free and a claim is due (as in ``WAITING``). It
    reports the outcomes gathered so far when no handler is left running, or when the oldest
    has waited ``report_delay``: failures with one ``fail_batch`` and successes with one
    ``complete``, each under the records' lease tokens; a claim due at that moment goes in
    the same round trip and transaction as the ``complete`` (``complete_and_claim``). A
    record stays in the heartbeat set
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

``AsyncWorker`` (``pgclaim.aio_worker``) is the same loop for asyncio: the states, the steps
that talk to the database (``_WorkerCore``: claims, reports, reclaims, the registration and
the deregistration, each written once as a generator of the client calls it makes), the
outcomes and the logging are this module's; only the handlers, the heartbeat, the listener
and the waits run on its event loop instead of threads.
"""
from __future__ import annotations

import asyncio
import collections
import enum
import inspect
import json
import logging
import math
import random
import select
import socket
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Generator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar

import psycopg

from . import _dsn, _sql
from ._signals import StopSignals
from .client import MAX_BATCH_SIZE, Claimed, ClientBase, Duration, QueueClient, as_interval
from .errors import OutcomeUnknown, PgclaimError, TransientError
from .retry import RetryPolicy, log_extra
from .retry import logger as _default_logger

Handler = (Callable[[Claimed], Any] | Callable[[Claimed], Awaitable[Any]]
           | Callable[[Claimed, psycopg.Connection[Any]], Any])
"""A record handler: a function (or coroutine function) of one ``Claimed`` record; with
``Worker(transactional=True)``, a function of the record and a connection in a transaction."""

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
    """A handler's failure (a success is the record itself)."""

    record: Claimed
    error: str
    retry_after: timedelta | None = None
    fatal: bool = False
    committed: bool | None = None
    """transactional handlers that ended well: True when the record was completed in the
    handler's transaction, False when its claim no longer held (nothing was committed)"""


class _LeaseLost(Exception):
    """The record's claim no longer held when its transactional handler completed it."""



#: how long the listener waits for its probe notification before it gives up on LISTEN
LISTEN_PROBE_WAIT = 5.0

#: how long records may wait in the queue of a single handler thread before more threads take
#: them: a batch of fast handlers runs on one thread (no wake-up of every thread per batch),
#: slow handlers run ``concurrency`` at once within this delay.
SPREAD_AFTER = 0.001


class _Handlers:
    """The handler threads, fed whole batches.

    Records to run wait in ``queued``; threads take them one by one and append each record
    whose handler succeeded to ``succeeded``, each failure to ``failed`` (``deque`` appends
    and pops are atomic: no lock and no future per record). A batch wakes one thread; more
    (up to ``size``) join in when records have waited ``SPREAD_AFTER`` (``spread``, from
    the main loop, or from a thread whose handler took that long). The main loop is woken
    (``wake``) only when ``finished()`` outcomes reach ``wake_at``, a threshold it sets
    before it sleeps.
    """

    def __init__(self, size: int, run: Callable[[Claimed], _Outcome | None],
                 wake: threading.Event, name: str) -> None:
        self.size = size
        self.queued: collections.deque[Claimed] = collections.deque()
        self.succeeded: collections.deque[Claimed] = collections.deque()
        self.failed: collections.deque[_Outcome] = collections.deque()
        self.wake_at = sys.maxsize
        self.queued_since = 0.0
        """when ``queued`` last went from empty to not empty"""
        self._run = run
        self._wake = wake
        self._name = name
        self._cond = threading.Condition()
        self._idle = 0
        """threads waiting for records (and not yet notified)"""
        self._closed = False
        self._threads: list[threading.Thread] = []

    def submit(self, records: Sequence[Claimed]) -> None:
        """Queues records for the threads and has one more thread take them."""
        with self._cond:
            if not self.queued:
                self.queued_since = time.monotonic()
            self.queued.extend(records)
            self._run_more(1)

    def spread_due(self, now: float) -> bool:
        """Whether records have waited ``SPREAD_AFTER`` while threads could take them."""
        return (bool(self.queued) and now >= self.queued_since + SPREAD_AFTER
                and (self._idle > 0 or len(self._threads) < self.size))

    def spread(self) -> None:
        """Has as many threads as there are queued records take them (up to ``size``)."""
        with self._cond:
            busy = len(self._threads) - self._idle
            self._run_more(min(len(self.queued), self.size - busy))

    def _run_more(self, n: int) -> None:
        """With the lock held: wakes up to ``n`` idle threads, starts new ones for the rest."""
        woken = min(n, self._idle)
        if woken > 0:
            self._idle -= woken
            self._cond.notify(woken)
        for _ in range(min(n - woken, self.size - len(self._threads))):
            t = threading.Thread(target=self._work, name=f"{self._name}_{len(self._threads)}")
            t.start()
            self._threads.append(t)

    def finished(self) -> int:
        """How many outcomes wait to be collected."""
        return len(self.succeeded) + len(self.failed)

    def take_queued(self) -> list[Claimed]:
        """Takes back the records no thread has started."""
        taken = []
        while True:
            try:
                taken.append(self.queued.popleft())
            except IndexError:
                return taken

    def close(self) -> None:
        """Lets the threads end once nothing is queued (running handlers are not waited for)."""
        with self._cond:
            self._closed = True
            self._idle = 0
            self._cond.notify_all()

    def _work(self) -> None:
        queued, succeeded, failed = self.queued, self.succeeded, self.failed
        run, wake, clock = self._run, self._wake, time.monotonic
        while True:
            with self._cond:
                while not queued:
                    if self._closed:
                        return
                    self._idle += 1
                    self._cond.wait()  # whoever notifies takes it off _idle
            while True:
                try:
                    record = queued.popleft()
                except IndexError:
                    break
                started = clock()
                outcome = run(record)
                if outcome is None:
                    succeeded.append(record)
                else:
                    failed.append(outcome)
                if len(succeeded) + len(failed) >= self.wake_at and not wake.is_set():
                    wake.set()
                if queued and clock() - started >= SPREAD_AFTER:
                    self.spread()  # a slow handler: the others need not wait for it


@dataclass
class _Loop:
    """The main loop's bookkeeping, in one place."""

    limit: int
    """the most records held at once: max(concurrency, batch_size)"""
    threshold: int
    """claim only while at most this many handlers run (half a batch of slots free)"""
    inflight: int = 0
    """records whose handler runs or waits for a thread (their outcome not collected)"""
    succeeded: list[Claimed] = field(default_factory=list)
    """records whose handler succeeded, not reported yet"""
    failed: list[_Outcome] = field(default_factory=list)
    """failures not reported yet"""
    done_since: float = 0.0
    """when the oldest outcome not reported yet arrived"""
    next_claim: float = 0.0
    """no claim before this time (the poll timer), unless woken; 0: as soon as slots free"""
    empty_at: float | None = None
    """when the last claim came back empty (None: it found records)"""
    found: bool = False
    """whether the last claim found records"""
    floor_from: float | None = None
    """when the last claim that found nothing right after another such claim ended: a
    notification makes the worker claim no sooner than ``min_wake_interval`` after it"""
    next_reclaim: float = 0.0
    db_failures: int = 0
    """database errors in a row (the backoff grows with them)"""
    held_back: bool = False
    """outcomes wait for a heartbeat under way to end (it wakes the loop)"""
    combine: bool = True
    """a report due with a claim goes with it in one call (``complete_and_claim``); off
    after such a call failed, until a report alone went through"""

    def room(self) -> bool:
        """Whether half a batch of slots is free."""
        return self.inflight <= self.threshold

    def wake_floor(self, min_wake_interval: float) -> float:
        """The earliest time a notification may make the worker claim."""
        return 0.0 if self.floor_from is None else self.floor_from + min_wake_interval

    def report_due(self, now: float, report_delay: float) -> bool:
        """Whether the gathered outcomes go out now: no handler left running, or the oldest
        has waited ``report_delay``."""
        return self.done > 0 and (not self.inflight or now >= self.done_since + report_delay)

    @property
    def done(self) -> int:
        """How many outcomes are not reported yet."""
        return len(self.succeeded) + len(self.failed)


def _error_text(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".replace("\x00", "\\x00")  # text cannot hold NUL
    return text[:MAX_ERROR_LENGTH]


def _payload_text(payload: Any) -> str:
    return json.dumps(payload, default=str)[:MAX_ERROR_LENGTH]




_Step = tuple[bool, str, tuple[Any, ...], dict[str, Any]]
"""One thing the loop does: a call of the client (``False``) or of the worker itself
(``True``: a wait, which ``Worker`` makes on its threads' events and ``AsyncWorker`` on its
event loop), the method's name, its positional and keyword arguments."""

R = TypeVar("R")
Steps = Generator[_Step, Any, R]
"""What the worker does, written once for ``Worker`` and ``AsyncWorker``: a generator that
yields each call it makes (and gets its result back, or the client's ``PgclaimError``
thrown in); its return value is the outcome. ``Worker._do`` runs it with blocking calls,
``AsyncWorker._do`` awaits each one."""


def _call(method: str, *args: Any, **kwargs: Any) -> _Step:
    """A step that calls ``method`` of the client."""
    return False, method, args, kwargs


def _local(method: str, *args: Any, **kwargs: Any) -> _Step:
    """A step that calls ``method`` of the worker (a wait: ``_pause``, ``_pause_now``,
    ``_sleep``, ``_reserve``, ``_halt_helpers``)."""
    return True, method, args, kwargs


CL = TypeVar("CL", bound="ClientBase[Any, Any]")


class _WorkerCore(Generic[CL]):
    """What ``Worker`` and ``AsyncWorker`` share: their settings, stats, state and logging,
    the records held (and kept out of a heartbeat and a report at once), what a handler's
    exception means, and every step of the loop that talks to the database, as ``Steps``.
    A subclass runs the steps (``_do``), its handlers, heartbeat and listener."""

    def __init__(
        self,
        client: CL,
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
        listen_dsn: str | None = None,
        install_signals: bool = True,
        backoff: RetryPolicy | None = None,
        logger: logging.Logger | None = None,
        log_payloads: bool = False,
        transactional: bool = False,
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
        if listen_dsn is not None:
            _dsn.check(listen_dsn)
        self.listen_dsn = listen_dsn
        self.install_signals = install_signals
        self.backoff = backoff or RetryPolicy(attempts=1_000_000, base=0.5, cap=15.0,
                                              deadline=None)
        self._log = logger or _default_logger
        self.log_payloads = log_payloads
        self.transactional = transactional
        self.stats = WorkerStats()
        self._state = WorkerState.STARTING
        self._listener_started = False
        # Records claimed and not yet reported: the heartbeat keeps their leases alive. A
        # heartbeat and a report of this worker never update the same records at once: they
        # lock rows in different orders, and the two would deadlock (found by the chaos
        # suite's SIGSTOP row: the deadlock detector's second made 1 s leases lapse).
        self._records: dict[int, Claimed] = {}
        self._records_lock = threading.Lock()
        self._heartbeat_ended = threading.Condition(self._records_lock)
        self._reporting: set[int] = set()        # ids in a report under way
        self._beating: frozenset[int] = frozenset()  # ids in a heartbeat under way
        self._init_runtime()

    def _init_runtime(self) -> None:
        """Makes what the subclass runs with: events, the wake-ups of its loop."""
        raise NotImplementedError

    # The subclass's events: ``_stop`` (no more claims), ``_stop_now`` (do not wait for
    # running handlers), ``_notified`` (a notification came, or the listener reconnected);
    # ``threading.Event`` or ``asyncio.Event`` (``is_set``, ``set``, ``clear`` alike).
    _stop: Any
    _stop_now: Any
    _notified: Any

    @property
    def stopping(self) -> bool:
        """True once ``stop`` was called (or a signal came)."""
        return bool(self._stop.is_set())

    @property
    def state(self) -> WorkerState:
        """The state the worker is in (``WorkerState``)."""
        return self._state

    # -- logging --------------------------------------------------------------------------

    def _extra(self, **fields: Any) -> dict[str, Any]:
        return log_extra(self.queue, worker_id=self.worker_id, **fields)

    def _info(self, msg: str, *args: Any, **fields: Any) -> None:
        self._log.info("pgclaim worker %s: " + msg, self.worker_id, *args,
                       extra=self._extra(**fields))

    def _warn(self, msg: str, *args: Any, **fields: Any) -> None:
        self._log.warning("pgclaim worker %s: " + msg, self.worker_id, *args,
                          extra=self._extra(**fields))

    def _on_first_signal(self, name: str) -> None:
        self._info("received %s", name)
        self.stop()

    def _on_second_signal(self, name: str) -> None:
        self._info("received %s again", name)
        self.stop(now=True)

    def stop(self, *, now: bool = False) -> None:
        """Asks the worker to stop (the subclass says how)."""
        raise NotImplementedError

    def _stop_logged(self, now: bool) -> None:
        """Logs a stop request (once each: stopping, stopping now)."""
        if not self._stop.is_set():
            self._info("stopping")
        if now and not self._stop_now.is_set():
            self._info("stopping now: not waiting for running handlers")

    # -- the records held -----------------------------------------------------------------

    def _hold(self, records: Sequence[Claimed]) -> None:
        with self._records_lock:
            self._records.update({r.id: r for r in records})

    def _let_go(self, records: Sequence[Claimed]) -> None:
        with self._records_lock:
            pop = self._records.pop
            for record in records:
                pop(record.id, None)

    def _reserve_now(self, records: list[Claimed]) -> list[Claimed]:
        """With ``_records_lock`` held: marks the records a report is about to send, leaving
        out those in a heartbeat under way; returns the marked ones (``records`` itself when
        none is left out)."""
        beating = self._beating
        ready = records
        if beating and any(r.id in beating for r in records):
            ready = [r for r in records if r.id not in beating]
        self._reporting.update([r.id for r in ready])
        return ready

    def _unreserve(self, records: Sequence[Claimed]) -> None:
        with self._records_lock:
            self._reporting.difference_update([r.id for r in records])

    def _beat_begin(self) -> list[int]:
        """The ids a heartbeat covers: those held, except those in a report under way (which
        ends their leases, or leaves them to the next heartbeat if it fails). Only the
        records this worker knows it holds: one whose claim reply was lost must not be kept
        alive by heartbeats."""
        with self._records_lock:
            ids = [i for i in self._records if i not in self._reporting]
            self._beating = frozenset(ids)
        return ids

    def _beat_end(self) -> None:
        with self._heartbeat_ended:
            self._beating = frozenset()
            self._heartbeat_ended.notify_all()

    def _heartbeat_failed(self, exc: PgclaimError) -> None:
        self.stats.db_errors += 1
        self._warn("heartbeat failed: %s", exc, sqlstate=exc.sqlstate)

    # -- handlers -------------------------------------------------------------------------

    def _failure(self, record: Claimed, exc: Exception) -> _Outcome:
        """What the handler's exception ``exc`` makes of ``record``'s attempt."""
        if isinstance(exc, Retry):
            return _Outcome(record, error=_error_text(exc), retry_after=exc.after)
        if isinstance(exc, Fatal):
            return _Outcome(record, error=_error_text(exc), fatal=True)
        self.stats.handler_errors += 1
        detail = (f"{_error_text(exc)}; payload {_payload_text(record.payload)}"
                  if self.log_payloads else type(exc).__name__)
        self._log.info("pgclaim worker %s: handler failed on record %d (attempt %d): %s",
                       self.worker_id, record.id, record.attempt, detail,
                       extra=self._extra(record_id=record.id, attempt=record.attempt))
        return _Outcome(record, error=_error_text(exc))

    def _collect(self, handlers: Any, loop: _Loop, now: float) -> None:
        """Moves the outcomes of finished handlers (the ``succeeded`` and ``failed`` deques
        of ``handlers``) to ``loop``."""
        succeeded, failed = handlers.succeeded, handlers.failed
        n, m = len(succeeded), len(failed)
        if not n + m:
            return
        if not loop.done:
            loop.done_since = now
        if n:
            pop = succeeded.popleft
            loop.succeeded.extend([pop() for _ in range(n)])
        if m:
            pop_failed = failed.popleft
            outcomes = [pop_failed() for _ in range(m)]
            if self.transactional:
                outcomes = self._settled(outcomes)
            loop.failed.extend(outcomes)
        loop.inflight -= n + m

    def _settled(self, outcomes: list[_Outcome]) -> list[_Outcome]:
        """Counts the records transactional handlers settled themselves (completed, or no
        longer held) and lets them go; returns the failures left to report."""
        done = [o for o in outcomes if o.committed is not None]
        if not done:
            return outcomes
        completed = sum(1 for o in done if o.committed)
        self.stats.completed += completed
        if len(done) > completed:
            self.stats.lost += len(done) - completed
            self._warn("%d record(s) were no longer held when their handler's transaction "
                       "completed them: nothing of it was committed", len(done) - completed,
                       operation="complete")
        self._let_go([o.record for o in done])
        return [o for o in outcomes if o.committed is None]

    def _new_loop(self) -> _Loop:
        limit = max(self.concurrency, self.batch_size)
        return _Loop(limit=limit, threshold=limit - math.ceil(self.batch_size / 2),
                     next_reclaim=time.monotonic() + self.reclaim_every * random.random())

    # -- the listener ---------------------------------------------------------------------

    def _listen_target(self) -> tuple[str, dict[str, Any]] | None:
        """The DSN and settings of the LISTEN connection (None: nothing to listen from)."""
        target = self.client.conninfo()
        if self.listen_dsn is None:
            return target
        kwargs = target[1] if target is not None else {"autocommit": True}
        return self.listen_dsn, kwargs

    def _listen_channels(self) -> tuple[str, str]:
        """The queue's channel, and a probe channel of this listener's own."""
        return (_sql.channel(self.queue),
                _sql.channel(f"probe_{random.getrandbits(64):016x}"))

    def _listen_unusable(self) -> None:
        if not self._stop.is_set():
            self._warn(
                "no notification sent through the client reached the LISTEN connection"
                " within %.0fs (a pooler in transaction mode, such as PgBouncer?): polling"
                " every %.1fs instead; give the worker listen_dsn=, a direct connection, to"
                " be woken at once", LISTEN_PROBE_WAIT, self.poll_interval, operation="listen")

    def _listen_lost(self, failures: int, exc: psycopg.Error) -> float:
        """Logs the loss of the LISTEN connection; returns the wait before reconnecting."""
        wait = self.backoff.backoff(failures)
        self._warn("listen connection lost, reconnect %d in %.1fs: %s", failures, wait,
                   str(exc).strip(), operation="listen")
        return wait

    def _probe_failed(self, exc: PgclaimError) -> None:
        self._warn("listen probe not sent: %s", exc, operation="listen", sqlstate=exc.sqlstate)

    # -- STARTING -------------------------------------------------------------------------

    def _register_steps(self) -> Steps[bool]:
        failures = 0
        while not self._stop.is_set():
            try:
                yield _call("check_schema")  # SchemaMismatch or SchemaMissing: not waited for
                yield _call("register_worker", self.worker_id, self.info)
                self._info("registered (concurrency %d, batch %d)", self.concurrency,
                           self.batch_size)
                return True
            except TransientError as exc:
                failures += 1
                self.stats.db_errors += 1
                wait = self.backoff.backoff(failures)
                self._warn("register failed, retry %d in %.1fs: %s", failures, wait, exc,
                           sqlstate=exc.sqlstate)
                yield _local("_pause", wait)
        return False

    # -- WAITING, CLAIMING, RUNNING, BACKING_OFF ------------------------------------------

    def _round(self, handlers: Any, loop: _Loop, until_empty: bool) -> Steps[bool | None]:
        """One pass of the main loop: takes the finished handlers' outcomes, reports them
        when due (with a claim due in the same call), reclaims orphans when due, claims when
        due (records go to ``handlers.submit``), backs off after a database error. Returns
        True to go round again at once, False when done (``until_empty`` and nothing left),
        None to wait for something to do (``_wake_at``, ``_next_deadline``)."""
        now = time.monotonic()
        self._collect(handlers, loop, now)
        if until_empty and not loop.inflight:
            loop.next_claim = 0.0
        elif (self._notified.is_set() and loop.room()
              and now >= loop.wake_floor(self.min_wake_interval)):
            # Taken only when it can lead to a claim: left set, it keeps the listener
            # from waking the loop again for every notification of a flood.
            self._notified.clear()
            loop.next_claim = 0.0
        ok = True
        records: list[Claimed] | None = None
        want = min(self.batch_size, loop.limit - loop.inflight)
        claim_due = loop.room() and now >= loop.next_claim
        if loop.report_due(now, self.report_delay):
            # A claim due with the report goes in its round trip and transaction (unless
            # a reclaim falls due between them, or the last such call failed).
            combine = claim_due and loop.combine and now < loop.next_reclaim
            if combine:
                self._state = WorkerState.CLAIMING
            ok, records = yield from self._report_steps(loop, want if combine else 0)
        if ok and records is None and now >= loop.next_reclaim:
            ok = yield from self._reclaim_steps()
            loop.next_reclaim = now + self.reclaim_every
        claimed_full = False
        if ok and (records is not None or claim_due):
            if records is None:
                self._state = WorkerState.CLAIMING
                records = yield from self._claim_steps(want)
            ended = time.monotonic()
            if records is None:
                ok = False
            else:
                if records:
                    self._hold(records)
                    loop.inflight += len(records)
                    handlers.submit(records)
                claimed_full = len(records) == want
                loop.empty_at = None if records else ended
                # A claim that found nothing right after one that found records is
                # most often one that lost its record to another worker, or one prompted
                # by the notification of a record it had just taken: it does not delay
                # the next notification. A second one in a row does.
                loop.floor_from = None if records or loop.found else ended
                loop.found = bool(records)
                if not claimed_full:
                    loop.next_claim = ended + (yield from self._idle_wait_steps())
        if not ok:
            loop.db_failures += 1
            self._state = WorkerState.BACKING_OFF
            yield _local("_pause", self.backoff.backoff(loop.db_failures))
            return True
        loop.db_failures = 0
        held = bool(loop.inflight or loop.done)
        self._state = WorkerState.RUNNING if held else WorkerState.WAITING
        if until_empty and loop.empty_at is not None and not held:
            self._info("no record due: done")
            return False
        if claimed_full and loop.room():
            return True
        if (self.listen and not until_empty and not self._listener_started
                and loop.next_claim > now):
            # Only now is there anything to be woken for: the poll timer runs.
            self._listener_started = True
            self._start_listener()
        return None

    def _start_listener(self) -> None:
        """Starts the listener (``Worker``: a thread; ``AsyncWorker``: a task)."""
        raise NotImplementedError

    def _end_listener(self) -> None:
        """Makes the listener end now (it waits on its connection otherwise)."""
        raise NotImplementedError

    def _main_steps(self, handlers: Any, loop: _Loop, until_empty: bool) -> Steps[None]:
        """Rounds (``_round``) until stopped or done, waiting in between for something to do:
        enough outcomes (``_wake_at``), a notification, ``stop``, or the next deadline."""
        while not self._stop.is_set():
            again = yield from self._round(handlers, loop, until_empty)
            if again is False:
                return
            if again is None:
                yield _local("_sleep", handlers, self._wake_at(loop),
                             self._next_deadline(loop) - time.monotonic())

    def _wake_at(self, loop: _Loop) -> int:
        """How many outcomes of running handlers give the loop something to do: the first
        one (it starts the ``report_delay`` clock), enough to free half a batch of slots
        when a claim is due, and the last one (no handler left running: report)."""
        if not loop.inflight:
            return sys.maxsize
        at = loop.inflight
        if not loop.done:
            at = 1
        if (time.monotonic() >= loop.next_claim or self._notified.is_set()) \
                and not loop.room():
            at = min(at, loop.inflight - loop.threshold)
        return at

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

    def _claim_steps(self, want: int) -> Steps[list[Claimed] | None]:
        try:
            records = yield _call("claim", self.queue, self.worker_id, want, self.lease)
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
        return records  # type: ignore[no-any-return]

    def _idle_wait_steps(self) -> Steps[float]:
        """How long to wait before the next claim after one that got less than it asked for:
        ``poll_interval``, or less when ``next_eligible`` says a record becomes claimable
        sooner (a due time, a rate limit's next token), but at least ``min_wake_interval``.
        Notifications still wake the loop."""
        try:
            at = yield _call("next_eligible", self.queue)
        except PgclaimError:
            return self.poll_interval  # a failing database shows on the next claim
        if at is None:
            return self.poll_interval
        delay: float = (at - datetime.now(UTC)).total_seconds()
        return min(self.poll_interval, max(delay, self.min_wake_interval))

    def _reclaim_steps(self) -> Steps[bool]:
        try:
            n = yield _call("reclaim_orphans", queue=self.queue)
        except PgclaimError as exc:
            self.stats.db_errors += 1
            self._warn("reclaim_orphans failed: %s", exc, operation="reclaim_orphans",
                       sqlstate=exc.sqlstate)
            return False
        if n:
            self._info("took back %d orphaned record(s)", n, operation="reclaim_orphans")
        return True

    def _report_steps(self, loop: _Loop, want: int = 0
                      ) -> Steps[tuple[bool, list[Claimed] | None]]:
        """Reports the outcomes gathered in ``loop``: failures with ``fail_batch``, successes
        with ``complete`` (one call each, per ``MAX_BATCH_SIZE``), under their lease tokens;
        claims up to ``want`` records in the same round trip and transaction as the last
        ``complete`` (``complete_and_claim``) when ``want`` and successes to report.

        Reported outcomes leave ``loop`` and the heartbeat set. Outcomes whose records a
        heartbeat is extending at that moment are held back (``loop.held_back``); on a
        database error the rest stay for the next try. Returns whether the report went out,
        and the records claimed (None when no claim was made or it failed).
        """
        succeeded, failed = loop.succeeded, loop.failed
        records = succeeded + [o.record for o in failed] if failed else succeeded
        with self._records_lock:
            ready = self._reserve_now(records)
        loop.held_back = ready is not records
        if loop.held_back:
            ids = {r.id for r in ready}
            succeeded = [r for r in succeeded if r.id in ids]
            failed = [o for o in failed if o.record.id in ids]
        try:
            return (yield from self._send_steps(loop, succeeded, failed, want))
        finally:
            self._unreserve(ready)

    def _send_steps(self, loop: _Loop, succeeded: list[Claimed], failed: list[_Outcome],
                    want: int) -> Steps[tuple[bool, list[Claimed] | None]]:
        """Sends these outcomes (of ``loop``), failures first, claiming ``want`` records with
        the last ``complete`` when ``want``; those reported leave ``loop``."""
        for i in range(0, len(failed), MAX_BATCH_SIZE):
            batch = failed[i:i + MAX_BATCH_SIZE]
            records = [o.record for o in batch]
            retry_after = [o.retry_after for o in batch]
            fatal = [o.fatal for o in batch]
            try:
                statuses = yield _call(
                    "fail_batch", self.worker_id, records, [o.error for o in batch],
                    retry_after=retry_after if any(a is not None for a in retry_after) else None,
                    fatal=fatal if any(fatal) else None, queue=self.queue)
            except PgclaimError as exc:
                self.stats.db_errors += 1
                self._warn("fail_batch of %d record(s) failed, kept for later: %s",
                           len(records), exc, operation="fail_batch", sqlstate=exc.sqlstate)
                return False, None
            ids = {r.id for r in records}
            loop.failed = [o for o in loop.failed if o.record.id not in ids]
            self._let_go(records)
            failures = sum(1 for s in statuses.values() if s == "failed")
            self.stats.failed += failures
            self.stats.retried += len(statuses) - failures
            if len(statuses) < len(records):
                self.stats.lost += len(records) - len(statuses)
                self._warn("%d of %d failed record(s) were no longer held (lease taken back)",
                           len(records) - len(statuses), len(records), operation="fail_batch")
        claimed = None
        for i in range(0, len(succeeded), MAX_BATCH_SIZE):
            records = succeeded[i:i + MAX_BATCH_SIZE] if i or len(succeeded) > MAX_BATCH_SIZE \
                else succeeded
            combined = want > 0 and i + MAX_BATCH_SIZE >= len(succeeded)
            try:
                if combined:
                    n, claimed = yield _call("complete_and_claim", self.worker_id, records,
                                             self.queue, want, self.lease)
                else:
                    n = yield _call("complete", self.worker_id, [r.id for r in records],
                                    [r.lease_token for r in records], queue=self.queue)
            except PgclaimError as exc:
                self.stats.db_errors += 1
                if combined:
                    # The next report goes alone: an error of the claim (its queue dropped,
                    # rights revoked) must not hold the completions back for good.
                    loop.combine = False
                    unknown = " (claimed records come back after the lease)" \
                        if isinstance(exc, OutcomeUnknown) else ""
                    self._warn("complete_and_claim of %d record(s) failed, kept for later%s:"
                               " %s", len(records), unknown, exc,
                               operation="complete_and_claim", sqlstate=exc.sqlstate)
                else:
                    self._warn("complete of %d record(s) failed, kept for later: %s",
                               len(records), exc, operation="complete", sqlstate=exc.sqlstate)
                return False, None
            if not combined:
                loop.combine = True
            loop.succeeded = _without(loop.succeeded, records)
            self._let_go(records)
            self.stats.completed += n
            if n < len(records):
                self.stats.lost += len(records) - n
                self._warn("%d of %d record(s) were no longer held (lease taken back)",
                           len(records) - n, len(records), operation="complete")
        if claimed is not None:
            self.stats.claimed += len(claimed)
        return True, claimed

    # -- DRAINING, STOPPING ---------------------------------------------------------------

    def _report_waiting_steps(self, loop: _Loop, wait: float = 0.0) -> Steps[bool]:
        """``_report_steps`` without a claim, after waiting up to ``wait`` seconds for a
        heartbeat under way over the same records to end; returns whether it went out."""
        if wait > 0 and loop.done:
            records = loop.succeeded + [o.record for o in loop.failed]
            self._unreserve((yield _local("_reserve", records, wait)))
        ok, _ = yield from self._report_steps(loop)
        return ok

    # -- DRAINING, STOPPING ---------------------------------------------------------------

    def _drain_steps(self, handlers: Any, loop: _Loop) -> Steps[None]:
        """Releases the records not started, waits for running handlers (up to ``grace``,
        unless stopping now) while reporting, then reports what is left."""
        self._state = WorkerState.DRAINING
        self._stop.set()  # after until_empty too: the listener ends, nothing more is claimed
        self._end_listener()
        records = handlers.take_queued()
        loop.inflight -= len(records)
        if records:
            # deregistering releases any a heartbeat keeps from this release
            ready = yield _local("_reserve", records, 5.0)
            try:
                yield from self._release_steps(ready)
            finally:
                self._unreserve(ready)
            self._let_go(records)
        grace_end = time.monotonic() + self.grace
        if loop.inflight and not self._stop_now.is_set():
            self._info("waiting up to %.1fs for %d running handler(s)", self.grace,
                       loop.inflight)
        reporting = True
        while True:
            now = time.monotonic()
            self._collect(handlers, loop, now)
            if not loop.inflight or self._stop_now.is_set() or now >= grace_end:
                break
            if reporting and loop.report_due(now, self.report_delay):
                # on failure: once more at the end
                reporting = yield from self._report_waiting_steps(loop)
            deadline = grace_end
            if reporting and loop.done and not loop.held_back:
                deadline = min(deadline, loop.done_since + self.report_delay)
            yield _local("_sleep", handlers, 1, deadline - now)
        deadline = time.monotonic() + max(self.grace, 5.0)
        tries = 0
        while loop.done:
            # waits for a heartbeat under way to end rather than hold outcomes back
            if (yield from self._report_waiting_steps(
                    loop, wait=max(0.0, deadline - time.monotonic()))):
                if loop.held_back and time.monotonic() < deadline:
                    continue
                break
            tries += 1
            if self._stop_now.is_set() or time.monotonic() >= deadline:
                break
            yield _local("_pause_now", self.backoff.backoff(tries))
        if loop.done:
            self._warn("could not report %d outcome(s): deregistering releases them",
                       loop.done)
        if loop.inflight:
            self.stats.abandoned = loop.inflight
            self._warn("%d handler(s) still running, not waited for: their records are "
                       "released", loop.inflight)

    def _release_steps(self, records: list[Claimed]) -> Steps[None]:
        """Releases ``records``, which no handler started (attempt not counted)."""
        try:
            n = yield _call("release", self.worker_id, [r.id for r in records],
                            [r.lease_token for r in records], queue=self.queue)
            self.stats.released += n
            self._info("released %d record(s) it had not started", n, operation="release")
        except PgclaimError as exc:
            self._warn("release failed (deregistering releases them): %s", exc,
                       operation="release")

    def _deregister_steps(self) -> Steps[None]:
        """Stops the heartbeat (a heartbeat after the deregistration would register the
        worker again) and deregisters, releasing whatever is still held."""
        self._state = WorkerState.STOPPING
        yield _local("_halt_helpers")
        try:
            n = yield _call("deregister_worker", self.worker_id, queue=self.queue)
            self.stats.released += n
            self._info("deregistered (released %d)", n, operation="deregister_worker")
        except PgclaimError as exc:
            self._warn("deregister failed: %s", exc, operation="deregister_worker")


class Worker(_WorkerCore[QueueClient]):
    """Processes the records of one queue with ``handler`` until stopped.

    ``concurrency`` handlers run at once; ``batch_size`` records are claimed per call (default:
    ``concurrency``; more means records wait locally, their leases kept alive by the
    heartbeat). ``lease`` overrides the queue's lease; ``heartbeat_every`` (seconds) should be
    well under both the lease and the server's ``worker_timeout``. ``poll_interval`` bounds
    the wait when no notification comes; ``min_wake_interval`` is the least time between a
    second claim in a row that found nothing and the next claim a notification prompts (so
    a flood of notifications costs an idle worker at most one claim per
    ``min_wake_interval``);
    ``reclaim_every`` spaces ``reclaim_orphans`` calls; ``report_delay`` is how long an
    outcome may wait for others to share its report while handlers still run; ``grace`` is
    how long ``stop`` waits for running handlers.

    The listener starts when the worker first waits for its poll timer (after a claim that
    got less than it asked for: a worker whose claims come back full needs none, and one
    run ``until_empty`` claims again as soon as its handlers end, so it polls). It LISTENs
    on its own connection: to ``listen_dsn`` when given
    (a direct connection to the server when calls go through a pooler such as PgBouncer in
    transaction mode, which cannot carry LISTEN), else to the client's DSN; it then checks
    that a notification sent through the client reaches it, and when none does within
    ``LISTEN_PROBE_WAIT`` seconds it says so and stops: the worker polls every
    ``poll_interval``. ``listen=False`` polls from the start.

    With ``transactional=True`` the handler is called as ``handler(record, conn)``: ``conn``
    is a connection of the client's pool in a transaction, and the record is completed (under
    its lease token) in that same transaction once the handler returns, so that what the
    handler wrote and the completion commit together, or not at all. When the claim no longer
    holds (the lease expired and the record went to another worker) nothing commits and the
    record counts as ``lost``; a handler that raises rolls its writes back and its record
    fails as usual. Each record then costs a transaction of its own (no batched complete),
    and the pool needs a connection per handler running at once on top of the worker's own
    (``max_size`` at least ``concurrency + 2``). The handler may also fence its writes with
    ``pgclaim.fence_trigger`` or ``holds(record.id, record.lease_token)``.

    A handler's failure is logged with the record's id, attempt and the exception's type; its
    text (which may quote the payload) stays in the record's ``last_error``. With
    ``log_payloads=True`` the log line carries the exception's text and the payload as well.
    """

    def _init_runtime(self) -> None:
        self._async = inspect.iscoroutinefunction(self.handler)
        if self.transactional:
            if self._async:
                raise ValueError("transactional handlers must be plain functions, got a "
                                 "coroutine function")
            if self.client.pool is None:
                raise ValueError("transactional=True needs a client with a pool (a DSN or "
                                 "a ConnectionPool), not one built on a single connection")
        self._stop = threading.Event()      # no more claims: drain and deregister
        self._stop_now = threading.Event()  # do not wait for running handlers
        self._halt = threading.Event()      # the heartbeat and listener threads end
        self._wake = threading.Event()      # the main loop has something to look at
        self._notified = threading.Event()  # a notification came (or the listener reconnected)
        # Wakes the listener thread out of its wait on the LISTEN connection (on stop).
        self._listener_wake: tuple[socket.socket, socket.socket] | None = None
        self._listening = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    # -- public ---------------------------------------------------------------------------

    def stop(self, *, now: bool = False) -> None:
        """Asks the worker to stop: no more claims, the records not started are released,
        running handlers get ``grace`` seconds and the outcomes are reported.

        With ``now=True`` it does not wait for running handlers (nor retry reports): their
        records are released by the deregistration while the handlers themselves go on in
        their threads (their outcomes are dropped), so another worker may start them again.
        """
        self._stop_logged(now)
        if now:
            self._stop_now.set()
        self._stop.set()
        self._wake.set()
        self._wake_listener()

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
        handlers = _Handlers(self.concurrency, self._run_handler, self._wake,
                             f"pgclaim-{self.queue}")
        loop = self._new_loop()
        signals = StopSignals(self._on_first_signal, self._on_second_signal,
                              enabled=self.install_signals)
        with signals:
            try:
                if not self._do(self._register_steps()):
                    return self.stats
                self._start_thread(self._heartbeat_loop, "heartbeat")
                self._do(self._main_steps(handlers, loop, until_empty))
                self._do(self._drain_steps(handlers, loop))
                self._do(self._deregister_steps())
            finally:
                self._stop.set()
                self._halt.set()
                self._wake_listener()
                self._wake.set()
                for t in self._threads:
                    t.join(timeout=5)
                handlers.take_queued()  # not started: deregistering released them
                handlers.close()
                if self._loop is not None:
                    self._loop.call_soon_threadsafe(self._loop.stop)
                self._state = WorkerState.STOPPED
        return self.stats

    def _do(self, steps: Steps[R]) -> R:
        """Runs ``steps``: each call of the client or of the worker, in this thread."""
        result: Any = None
        error: PgclaimError | None = None
        try:
            while True:
                step = steps.throw(error) if error is not None else steps.send(result)
                local, method, args, kwargs = step
                result = error = None
                try:
                    result = getattr(self if local else self.client, method)(*args, **kwargs)
                except PgclaimError as exc:
                    error = exc
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]

    # -- the records held -----------------------------------------------------------------

    def _reserve(self, records: list[Claimed], wait: float = 0.0) -> list[Claimed]:
        """Marks the records a report is about to send, leaving out those in a heartbeat under
        way (after waiting up to ``wait`` seconds for it to end); returns the marked ones
        (``records`` itself when none is left out)."""
        deadline = time.monotonic() + wait
        with self._heartbeat_ended:
            while self._beating and any(r.id in self._beating for r in records):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._heartbeat_ended.wait(remaining)
            return self._reserve_now(records)

    def _heartbeat(self) -> None:
        """One heartbeat for the records held, except those in a report under way."""
        ids = self._beat_begin()
        try:
            self.client.heartbeat(self.worker_id, ids, queue=self.queue)
        finally:
            self._beat_end()
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
                self._heartbeat_failed(exc)

    def _wake_listener(self) -> None:
        pair = self._listener_wake
        if pair is not None:
            try:
                pair[1].send(b"x")
            except OSError:  # closed, or its buffer full of earlier wake-ups
                pass

    def _start_listener(self) -> None:
        self._start_thread(self._listen_loop, "listen")

    def _end_listener(self) -> None:
        self._wake_listener()

    def _listen_loop(self) -> None:
        target = self._listen_target()
        if target is None:
            self._info("no pool to listen from: polling every %.1fs", self.poll_interval)
            return
        conninfo, kwargs = target
        failures = 0
        channel, first_probe = self._listen_channels()
        probe: str | None = first_probe
        wake_r, wake_w = self._listener_wake = socket.socketpair()
        wake_r.setblocking(False)
        wake_w.setblocking(False)
        try:
            while not self._stop.is_set():
                try:
                    with psycopg.connect(conninfo, **kwargs) as conn:
                        if probe is not None:
                            # Before the queue's channel: through a pooler, the LISTEN stays
                            # on a server connection other clients then use, and nothing
                            # notifies this channel again.
                            conn.execute(_sql.listen(probe))
                            if not self._probe(conn, wake_r, probe):
                                self._listen_unusable()
                                return
                            probe = None  # it works: not checked again after a reconnect
                        conn.execute(_sql.listen(channel))
                        self._listening.set()
                        if failures:
                            self._info("listening again on %s", channel, operation="listen")
                        failures = 0
                        # Notifications sent while we were away are lost: look once.
                        self._notified.set()
                        self._wake.set()
                        self._listen(conn, wake_r)
                except psycopg.Error as exc:
                    self._listening.clear()
                    failures += 1
                    self._stop.wait(self._listen_lost(failures, exc))
        finally:
            self._listening.clear()
            self._listener_wake = None
            wake_r.close()
            wake_w.close()

    def _probe(self, conn: psycopg.Connection[Any], wake_r: socket.socket, probe: str
               ) -> bool:
        """Sends a notification on ``probe`` (which ``conn`` listens on) through the client;
        returns whether it reached ``conn`` within ``LISTEN_PROBE_WAIT`` seconds (True when
        it could not be sent: not known either way, and the polling goes on anyway)."""
        try:
            self.client.run(lambda c: c.execute(_sql.LISTEN_PROBE, {"channel": probe}),
                            operation="listen_probe", idempotent=True, queue=self.queue)
        except PgclaimError as exc:
            self._probe_failed(exc)
            return True
        fd, wake_fd = conn.fileno(), wake_r.fileno()
        deadline = time.monotonic() + LISTEN_PROBE_WAIT
        while not self._stop.is_set():
            if any(n.channel == probe for n in conn.notifies(timeout=0)):
                return True
            wait = deadline - time.monotonic()
            if wait <= 0:
                return False
            select.select([fd, wake_fd], [], [], wait)
        return False

    def _listen(self, conn: psycopg.Connection[Any], wake_r: socket.socket) -> None:
        """Waits on the LISTEN connection (and on ``wake_r``, written to on stop) and wakes
        the main loop when notifications come; returns once the worker stops."""
        fd, wake_fd = conn.fileno(), wake_r.fileno()
        while not self._stop.is_set():
            # Those already received (with another reply, or several in one packet) first:
            # the socket would not show them.
            if any(True for _ in conn.notifies(timeout=0)) and not self._notified.is_set():
                # One wake-up until the main loop takes it: a flood of notifications does
                # not spin the loop.
                self._notified.set()
                self._wake.set()
            readable, _, _ = select.select([fd, wake_fd], [], [], self.poll_interval)
            if wake_fd in readable:
                try:
                    wake_r.recv(4096)
                except OSError:
                    pass

    # -- handlers -------------------------------------------------------------------------

    def _run_handler(self, record: Claimed) -> _Outcome | None:
        """Runs the handler on one record: None when it succeeded, else its failure (or,
        for a transactional handler, what became of its record)."""
        try:
            if self.transactional:
                return self._run_in_transaction(record)
            result = self.handler(record)  # type: ignore[call-arg]
            if result is not None and inspect.isawaitable(result):
                loop = self._event_loop()
                asyncio.run_coroutine_threadsafe(_as_coroutine(result), loop).result()
            return None
        except Exception as exc:  # noqa: BLE001 - a handler's error fails its record only
            return self._failure(record, exc)

    def _run_in_transaction(self, record: Claimed) -> _Outcome:
        """Runs a transactional handler and completes its record in the same transaction."""
        pool = self.client.pool
        assert pool is not None
        try:
            with pool.connection() as conn, conn.transaction():
                self.handler(record, conn)  # type: ignore[call-arg]
                row = conn.execute("select pgclaim.complete(%s, %s, %s)",
                                   (self.worker_id, [record.id], [record.lease_token])
                                   ).fetchone()
                if row is None or row[0] != 1:
                    raise _LeaseLost
        except _LeaseLost:
            return _Outcome(record, error="", committed=False)
        return _Outcome(record, error="", committed=True)

    def _event_loop(self) -> asyncio.AbstractEventLoop:
        with self._loop_lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="pgclaim-asyncio",
                                 daemon=True).start()
                self._loop = loop
            return self._loop

    def _sleep(self, handlers: _Handlers, wake_at: int, timeout: float) -> None:
        """Waits up to ``timeout`` for a wake-up, asking the handler threads for one once
        ``wake_at`` outcomes are waiting to be collected; meanwhile lets more handler threads
        take the queued records once they have waited ``SPREAD_AFTER``."""
        handlers.wake_at = wake_at
        deadline = time.monotonic() + max(0.0, timeout)
        spread = False
        while handlers.finished() < wake_at:  # else one came meanwhile: no wait
            now = time.monotonic()
            wait = deadline - now
            if not spread:
                if handlers.spread_due(now):
                    handlers.spread()
                    spread = True
                else:
                    spread_at = handlers.queued_since + SPREAD_AFTER
                    if now < spread_at < deadline and handlers.spread_due(spread_at):
                        wait = spread_at - now
            if wait <= 0 or self._wake.wait(wait) or time.monotonic() >= deadline:
                break
        handlers.wake_at = sys.maxsize
        self._wake.clear()

    # -- waits (the ``_local`` steps) -----------------------------------------------------

    def _pause(self, seconds: float) -> None:
        """Waits ``seconds``, or until ``stop``."""
        self._stop.wait(seconds)

    def _pause_now(self, seconds: float) -> None:
        """Waits ``seconds``, or until ``stop(now=True)``."""
        self._stop_now.wait(seconds)

    def _halt_helpers(self) -> None:
        """Ends the heartbeat and listener threads (a heartbeat under way ends first)."""
        self._halt.set()
        for t in self._threads:
            t.join(timeout=5)


def _without(items: list[Claimed], gone: list[Claimed]) -> list[Claimed]:
    """``items`` less the records of ``gone`` (often all of them)."""
    if gone is items or len(gone) == len(items):
        return []
    ids = {r.id for r in gone}
    return [r for r in items if r.id not in ids]


async def _as_coroutine(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


__all__ = ["Fatal", "Handler", "Retry", "Worker", "WorkerState", "WorkerStats"]
