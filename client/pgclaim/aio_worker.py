"""AsyncWorker: the worker loop of ``pgclaim.worker`` on an asyncio event loop.

``await AsyncWorker(client, queue, handler).run()`` inside a running event loop (a web
service's, say) processes the records of ``queue`` with a coroutine function ``handler``,
over an ``AsyncQueueClient``, until ``stop()`` or the task is cancelled. It does what
``Worker`` does, in the same states and with the very same steps (``_WorkerCore``: claims,
reports in batches under lease tokens, ``complete_and_claim``, reclaims, registration,
draining and deregistration; ``Retry`` and ``Fatal``; waits from ``next_eligible``); only
what runs them differs: handlers are tasks, at most ``concurrency`` at once; the heartbeat
and the listener are tasks; waits are ``asyncio`` waits.
"""
from __future__ import annotations

import asyncio
import collections
import inspect
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any

import psycopg

from . import _sql
from . import worker as _worker
from ._signals import StopSignals
from .aio import AsyncQueueClient
from .client import Claimed
from .errors import PgclaimError
from .worker import R, Steps, WorkerState, WorkerStats, _Outcome, _WorkerCore


class _Tasks:
    """The handlers of an ``AsyncWorker``: one task per record, at most ``size`` at once.

    Records wait in ``queued`` until a slot frees; each outcome goes to ``succeeded`` or
    ``failed`` (as ``pgclaim.worker._Handlers`` does, so that ``_WorkerCore`` collects both
    alike), and the loop is woken (``wake``) once ``finished()`` reaches ``wake_at``.
    """

    def __init__(self, size: int, run: Callable[[Claimed], Awaitable[_Outcome | None]],
                 wake: asyncio.Event) -> None:
        self.size = size
        self.queued: collections.deque[Claimed] = collections.deque()
        self.succeeded: collections.deque[Claimed] = collections.deque()
        self.failed: collections.deque[_Outcome] = collections.deque()
        self.running: set[asyncio.Task[None]] = set()
        self.wake_at = sys.maxsize
        self._run = run
        self._wake = wake

    def submit(self, records: Sequence[Claimed]) -> None:
        """Queues records; starts as many as there are free slots."""
        self.queued.extend(records)
        self._start()

    def _start(self) -> None:
        while self.queued and len(self.running) < self.size:
            task = asyncio.create_task(self._one(self.queued.popleft()))
            self.running.add(task)
            task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[None]) -> None:
        self.running.discard(task)
        self._start()

    async def _one(self, record: Claimed) -> None:
        outcome = await self._run(record)
        if outcome is None:
            self.succeeded.append(record)
        else:
            self.failed.append(outcome)
        if self.finished() >= self.wake_at:
            self._wake.set()

    def finished(self) -> int:
        """How many outcomes wait to be collected."""
        return len(self.succeeded) + len(self.failed)

    def take_queued(self) -> list[Claimed]:
        """Takes back the records no task has started."""
        taken = list(self.queued)
        self.queued.clear()
        return taken

    def cancel(self) -> None:
        """Cancels the handlers still running (their outcomes are dropped)."""
        for task in self.running:
            task.cancel()


async def _until(event: asyncio.Event, seconds: float) -> bool:
    """Waits up to ``seconds`` for ``event``; returns whether it is set."""
    if not event.is_set() and seconds > 0:
        try:
            async with asyncio.timeout(seconds):
                await event.wait()
        except TimeoutError:
            pass
    return event.is_set()


class AsyncWorker(_WorkerCore[AsyncQueueClient]):
    """Processes the records of one queue with ``handler`` on the running event loop, until
    stopped: ``await worker.run()``.

    The parameters are ``Worker``'s, with the same meaning and defaults, over an
    ``AsyncQueueClient`` (but ``transactional``, which only ``Worker`` takes). ``handler`` is a coroutine function of one ``Claimed`` record
    (a plain function runs on the event loop itself: give one that blocks to
    ``asyncio.to_thread``); ``concurrency`` handlers run at once, as tasks. Raising
    ``Retry`` or ``Fatal`` (or any exception) means what it means for ``Worker``.

    ``stop()`` (callable from any thread) stops it gracefully: no more claims, the records
    not started are released, running handlers get ``grace`` seconds, the outcomes are
    reported, the worker deregisters and ``run`` returns its stats. ``stop(now=True)`` does
    not wait for running handlers: they are cancelled, and the deregistration releases
    their records. Cancelling the task that awaits ``run`` stops it as ``stop(now=True)``
    does, then raises ``CancelledError``. With ``install_signals`` (the default) and the
    event loop in the main thread, SIGTERM/SIGINT stop it (the first gracefully, a second
    now), as for ``Worker``; pass ``install_signals=False`` in a service that handles
    signals itself and calls ``stop()``.

    The listener is a task on a connection of its own (``listen_dsn`` when given), checked
    with a probe notification as ``Worker``'s is; the heartbeat is a task too.
    """

    def _init_runtime(self) -> None:
        if self.transactional:
            raise ValueError("AsyncWorker does not take transactional=True: use Worker, whose "
                             "handlers get a connection in a transaction")
        self._stop = asyncio.Event()
        self._stop_now = asyncio.Event()
        self._halt = asyncio.Event()
        self._wake = asyncio.Event()
        self._notified = asyncio.Event()
        self._beat_ended = asyncio.Event()
        self._beat_ended.set()
        self._listening = False
        self._event_loop: asyncio.AbstractEventLoop | None = None
        self._helpers: list[asyncio.Task[None]] = []
        self._listener: asyncio.Task[None] | None = None
        self._registered = False

    # -- public ---------------------------------------------------------------------------

    def stop(self, *, now: bool = False) -> None:
        """Asks the worker to stop: no more claims, the records not started are released,
        running handlers get ``grace`` seconds and the outcomes are reported. With
        ``now=True`` running handlers are cancelled instead (the deregistration releases
        their records). Safe to call from any thread."""
        loop = self._event_loop
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if loop is not None and running is not loop and not loop.is_closed():
            loop.call_soon_threadsafe(self._stop_here, now)
        else:
            self._stop_here(now)

    def _stop_here(self, now: bool) -> None:
        self._stop_logged(now)
        if now:
            self._stop_now.set()
        self._stop.set()
        self._wake.set()

    @property
    def listening(self) -> bool:
        """True while the LISTEN connection is up."""
        return self._listening

    async def run(self, *, until_empty: bool = False) -> WorkerStats:
        """Runs until stopped (or, with ``until_empty``, until no record is due and none runs)
        on the running event loop; returns what it did (``Worker.run``)."""
        self._event_loop = asyncio.get_running_loop()
        self._state = WorkerState.STARTING
        handlers = _Tasks(self.concurrency, self._run_handler, self._wake)
        loop = self._new_loop()
        signals = StopSignals(self._on_first_signal, self._on_second_signal,
                              enabled=self.install_signals)
        with signals:
            try:
                if not await self._do(self._register_steps()):
                    return self.stats
                self._registered = True
                self._task(self._heartbeat_loop())
                await self._do(self._main_steps(handlers, loop, until_empty))
                await self._do(self._drain_steps(handlers, loop))
                await self._do(self._deregister_steps())
                self._registered = False
            except asyncio.CancelledError:
                self._stop_here(now=True)
                handlers.cancel()
                if self._registered:
                    # What it held goes back now, not when its leases run out.
                    try:
                        await asyncio.wait_for(self._do(self._deregister_steps()),
                                               timeout=max(self.grace, 5.0))
                    except TimeoutError:
                        self._warn("deregister timed out: its records come back when their"
                                   " leases expire")
                raise
            finally:
                self._stop.set()
                self._end_listener()
                await self._halt_helpers()
                handlers.take_queued()  # not started: deregistering released them
                handlers.cancel()
                self._state = WorkerState.STOPPED
        return self.stats

    async def _do(self, steps: Steps[R]) -> R:
        """Runs ``steps``: each call of the client or of the worker, awaited."""
        result: Any = None
        error: PgclaimError | None = None
        try:
            while True:
                step = steps.throw(error) if error is not None else steps.send(result)
                local, method, args, kwargs = step
                result = error = None
                try:
                    result = await getattr(self if local else self.client, method)(
                        *args, **kwargs)
                except PgclaimError as exc:
                    error = exc
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]

    # -- waits (the ``_local`` steps) -----------------------------------------------------

    async def _pause(self, seconds: float) -> None:
        """Waits ``seconds``, or until ``stop``."""
        await _until(self._stop, seconds)

    async def _pause_now(self, seconds: float) -> None:
        """Waits ``seconds``, or until ``stop(now=True)``."""
        await _until(self._stop_now, seconds)

    async def _sleep(self, handlers: _Tasks, wake_at: int, timeout: float) -> None:
        """Waits up to ``timeout`` for a wake-up, asking the handlers for one once
        ``wake_at`` outcomes are waiting to be collected."""
        if handlers.finished() < wake_at:  # else one came meanwhile: no wait
            handlers.wake_at = wake_at
            await _until(self._wake, timeout)
            handlers.wake_at = sys.maxsize
        self._wake.clear()

    async def _reserve(self, records: list[Claimed], wait: float = 0.0) -> list[Claimed]:
        """Marks the records a report is about to send, leaving out those in a heartbeat under
        way (after waiting up to ``wait`` seconds for it to end)."""
        deadline = time.monotonic() + wait
        while self._beating and any(r.id in self._beating for r in records):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not await _until(self._beat_ended, remaining):
                break
        with self._records_lock:
            return self._reserve_now(records)

    async def _halt_helpers(self) -> None:
        """Ends the heartbeat (a heartbeat under way ends first) and the listener."""
        self._halt.set()
        if self._helpers:
            _, pending = await asyncio.wait(self._helpers, timeout=5)
            for task in pending:
                task.cancel()
            self._helpers.clear()

    # -- handlers -------------------------------------------------------------------------

    async def _run_handler(self, record: Claimed) -> _Outcome | None:
        """Runs the handler on one record: None when it succeeded, else its failure."""
        try:
            result = self.handler(record)  # type: ignore[call-arg]
            if inspect.isawaitable(result):
                await result
            return None
        except Exception as exc:  # noqa: BLE001 - a handler's error fails its record only
            return self._failure(record, exc)

    # -- heartbeat ------------------------------------------------------------------------

    async def _heartbeat_loop(self) -> None:
        # Runs until the worker deregisters, draining included (as ``Worker``'s).
        while not await _until(self._halt, self.heartbeat_every):
            ids = self._beat_begin()
            self._beat_ended.clear()
            try:
                await self.client.heartbeat(self.worker_id, ids, queue=self.queue)
            except PgclaimError as exc:
                self._heartbeat_failed(exc)
            finally:
                self._beat_end()
                self._beat_ended.set()
                self._wake.set()  # a report held back for this heartbeat may go now

    # -- the listener ---------------------------------------------------------------------

    def _start_listener(self) -> None:
        self._listener = self._task(self._listen_loop())

    def _task(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(coro)
        self._helpers.append(task)
        return task

    def _end_listener(self) -> None:
        if self._listener is not None:
            self._listener.cancel()

    async def _listen_loop(self) -> None:
        target = self._listen_target()
        if target is None:
            self._info("no pool to listen from: polling every %.1fs", self.poll_interval)
            return
        conninfo, kwargs = target
        failures = 0
        channel, first_probe = self._listen_channels()
        probe: str | None = first_probe
        try:
            while not self._stop.is_set():
                try:
                    async with await psycopg.AsyncConnection.connect(conninfo,
                                                                     **kwargs) as conn:
                        if probe is not None:
                            # Before the queue's channel, as ``Worker._listen_loop`` does.
                            await conn.execute(_sql.listen(probe))
                            if not await self._probe(conn, probe):
                                self._listen_unusable()
                                return
                            probe = None  # it works: not checked again after a reconnect
                        await conn.execute(_sql.listen(channel))
                        self._listening = True
                        if failures:
                            self._info("listening again on %s", channel, operation="listen")
                        failures = 0
                        # Notifications sent while we were away are lost: look once.
                        self._notified.set()
                        self._wake.set()
                        while not self._stop.is_set():
                            async for _ in conn.notifies(timeout=self.poll_interval):
                                # One wake-up until the main loop takes it: a flood of
                                # notifications does not spin the loop.
                                if not self._notified.is_set():
                                    self._notified.set()
                                    self._wake.set()
                except psycopg.Error as exc:
                    self._listening = False
                    failures += 1
                    await _until(self._stop, self._listen_lost(failures, exc))
        finally:
            self._listening = False

    async def _probe(self, conn: psycopg.AsyncConnection[Any], probe: str) -> bool:
        """Sends a notification on ``probe`` (which ``conn`` listens on) through the client;
        returns whether it reached ``conn`` within ``LISTEN_PROBE_WAIT`` seconds (True when
        it could not be sent)."""
        try:
            await self.client.run(
                lambda c: c.execute(_sql.LISTEN_PROBE, {"channel": probe}),
                operation="listen_probe", idempotent=True, queue=self.queue)
        except PgclaimError as exc:
            self._probe_failed(exc)
            return True
        deadline = time.monotonic() + _worker.LISTEN_PROBE_WAIT
        while not self._stop.is_set():
            wait = deadline - time.monotonic()
            if wait <= 0:
                return False
            async for n in conn.notifies(timeout=wait):
                if n.channel == probe:
                    return True
        return False


__all__ = ["AsyncWorker"]
