"""SIGTERM and SIGINT as stop requests, shared by ``Worker`` and ``MultiWorker``.

``StopSignals(graceful, now)`` is a context manager. Entered in the main thread, it takes
SIGTERM and SIGINT for as long as it is open: the first signal calls ``graceful(name)`` (the
caller stops claiming, finishes or releases what it holds and deregisters), every later one
calls ``now(name)`` (the caller stops waiting for running handlers). On exit it puts back
the handlers it replaced. Outside the main thread, where Python cannot take signals, it does
nothing.

The Python-level signal handler only writes the signal's number to a pipe; a thread of its
own reads the pipe and calls ``graceful`` or ``now``. So the callbacks never run inside the
signal handler, which interrupts the main thread wherever it is: they may log and set
events, whose locks the interrupted code may hold at that very moment.
"""
from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import Any, Self

from .retry import log_extra, logger

#: the signals that ask a worker to stop
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopSignals:
    """Routes SIGTERM and SIGINT to ``graceful`` (the first one) and ``now`` (every later one).

    Use it as ``with StopSignals(graceful, now, enabled=...):``; each callback receives the
    signal's name (``"SIGTERM"``). ``received`` counts the signals taken so far.
    """

    def __init__(self, graceful: Callable[[str], None], now: Callable[[str], None], *,
                 enabled: bool = True) -> None:
        self._graceful = graceful
        self._now = now
        self._enabled = enabled
        self.received = 0
        self._previous: dict[int, Any] = {}
        self._read_fd = -1
        self._write_fd = -1
        self._thread: threading.Thread | None = None

    @property
    def installed(self) -> bool:
        """True while the handlers are in place (entered in the main thread, enabled)."""
        return bool(self._previous)

    def __enter__(self) -> Self:
        if not self._enabled or threading.current_thread() is not threading.main_thread():
            return self
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._write_fd, False)
        self._thread = threading.Thread(target=self._dispatch, name="pgclaim-signals",
                                        daemon=True)
        self._thread.start()
        for sig in STOP_SIGNALS:
            self._previous[sig] = signal.signal(sig, self._on_signal)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        for sig, old in self._previous.items():
            signal.signal(sig, old)
        self._previous.clear()
        if self._thread is not None:
            os.close(self._write_fd)  # the dispatch thread reads the end of the pipe and ends
            self._thread.join(timeout=5)
            os.close(self._read_fd)
            self._thread = None
            self._read_fd = self._write_fd = -1

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        try:
            os.write(self._write_fd, bytes([signum]))
        except OSError:  # a full pipe: stop requests are waiting to be read already
            pass

    def _dispatch(self) -> None:
        while True:
            try:
                data = os.read(self._read_fd, 64)
            except OSError:
                return
            if not data:
                return
            for signum in data:
                self.received += 1
                callback = self._graceful if self.received == 1 else self._now
                try:
                    callback(signal.Signals(signum).name)
                except Exception:  # noqa: BLE001 - keep taking signals whatever a callback does
                    logger.exception("pgclaim: stop on signal %d failed", signum,
                                     extra=log_extra(None))


__all__ = ["STOP_SIGNALS", "StopSignals"]
