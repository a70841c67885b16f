"""Client processes that start together, and the two clocks every drain is timed with.

Every drain is timed from one start signal: the client processes are spawned, import their
libraries and wait; the signal releases them, and they connect, drain and exit. Two figures
come out of the same window:

- **to exit**: until the last client process has exited, as its parent sees it;
- **to last completion**: until the database shows no unfinished record, either as the client
  reports it (the clients that complete synchronously know when their last completing
  statement returned) or as a ``Poller`` sees it from a separate connection.
"""
from __future__ import annotations

import multiprocessing as mp
import multiprocessing.connection as mpc
import os
import queue as queue_mod
import subprocess
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg
from common import rss_mb

# A setup function runs in the child before the start signal (imports, objects that do not
# connect yet) and returns the measured function; that one returns a dict of results.
Setup = Callable[..., Callable[[], dict[str, Any]]]

CTX = mp.get_context("fork")


@dataclass
class Outcome:
    """What a group of client processes did, on the monotonic clock (shared by processes)."""

    t0: float
    """the start signal"""
    exits: list[float]
    """when each process exited, as the parent saw it"""
    results: list[dict[str, Any]]
    started_at: float = 0.0
    """wall-clock time (time.time) of the start signal"""

    @property
    def to_exit(self) -> float:
        """Seconds from the start signal to the last exit."""
        return max(self.exits) - self.t0

    @property
    def client_last(self) -> float | None:
        """Seconds from the start signal to the last completion the clients reported."""
        ends = [r["last_done"] for r in self.results if r.get("last_done") is not None]
        return max(ends) - self.t0 if ends else None


def _child(setup: Setup, args: tuple[Any, ...], ready: Any, start: Any, out: Any) -> None:
    try:
        fn = setup(*args)
        ready.wait()
        start.wait()
        res = fn()
        res["rss_mb"] = rss_mb()
        out.put(res)
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        out.put({"error": f"{exc!r}\n{traceback.format_exc()}"})


def run_group(setup: Setup, args_list: list[tuple[Any, ...]], timeout: float = 900.0,
              on_start: Callable[[float], None] | None = None) -> Outcome:
    """Starts one process per args tuple, releases them at once, waits for all to exit.

    ``on_start(t0)`` runs right after the start signal (e.g. to start a ``Poller``)."""
    n = len(args_list)
    ready = CTX.Barrier(n + 1)
    start = CTX.Event()
    out: Any = CTX.Queue()
    procs = [CTX.Process(target=_child, args=(setup, a, ready, start, out)) for a in args_list]
    for p in procs:
        p.start()
    try:
        ready.wait(timeout=120)
    except threading.BrokenBarrierError:
        for p in procs:
            p.kill()
        raise RuntimeError(f"workers did not get ready: {_drain_queue(out)}") from None
    # The results are read while the processes run: a child whose results do not fit in the
    # pipe would otherwise not exit.
    results: list[dict[str, Any]] = []
    reader = threading.Thread(target=_read_results, args=(out, n, results, timeout),
                              daemon=True)
    reader.start()
    t0 = time.monotonic()
    t0_wall = time.time()
    start.set()
    if on_start is not None:
        on_start(t0)
    exits = _wait_exits({p.sentinel: p for p in procs}, t0 + timeout)
    reader.join(timeout=10)
    for p in procs:
        p.join(timeout=10)
    errors = [r["error"] for r in results if "error" in r]
    if errors:
        raise RuntimeError("worker failed: " + errors[0])
    if len(results) < n:
        raise RuntimeError(f"only {len(results)} of {n} client processes reported")
    return Outcome(t0, exits, results, t0_wall)


def _read_results(out: Any, n: int, results: list[dict[str, Any]], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while len(results) < n and time.monotonic() < deadline:
        try:
            results.append(out.get(timeout=1.0))
        except queue_mod.Empty:
            continue


def _drain_queue(out: Any) -> list[Any]:
    got = []
    while True:
        try:
            got.append(out.get_nowait())
        except queue_mod.Empty:
            return got


def _wait_exits(waiting: dict[int, Any], deadline: float) -> list[float]:
    """Waits on process sentinels or pidfds; the monotonic time each one exited."""
    exits: list[float] = []
    while waiting:
        left = deadline - time.monotonic()
        if left <= 0:
            for p in waiting.values():
                p.kill()
            raise RuntimeError(f"{len(waiting)} client process(es) did not exit in time")
        for fd in mpc.wait(list(waiting), timeout=min(left, 5.0)):
            exits.append(time.monotonic())
            waiting.pop(fd)  # type: ignore[call-overload]
    return exits


def wait_popen_exits(procs: list[subprocess.Popen[str]], deadline: float) -> list[float]:
    """The monotonic time each child process (not forked by multiprocessing) exited."""
    fds = {os.pidfd_open(p.pid): p for p in procs}
    try:
        exits = _wait_exits(dict(fds), deadline)
    finally:
        for fd in fds:
            os.close(fd)
    for p in procs:
        p.wait()
    return exits


@dataclass
class Poller:
    """Asks the database every ``interval`` s whether a record is unfinished; the monotonic
    time of the first poll that found none (the time it was sent) is ``done_at``."""

    url: str
    query: str
    interval: float = 0.005
    done_at: float | None = None
    polls: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _conn: Any = None

    def __post_init__(self) -> None:
        # Connected before the start signal, so the connection is not part of any window.
        self._conn = psycopg.connect(
            self.url, autocommit=True, prepare_threshold=0,
            options="-c enable_seqscan=off -c enable_bitmapscan=off")
        self._conn.execute(self.query).fetchone()  # type: ignore[arg-type]

    def start(self, _t0: float = 0.0) -> None:
        """Starts polling in a thread."""
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            sent = time.monotonic()
            row = self._conn.execute(self.query).fetchone()  # type: ignore[arg-type]
            self.polls += 1
            if row is not None and not row[0]:
                self.done_at = sent
                return
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - sent)))

    def finish(self, timeout: float = 60.0) -> float | None:
        """Waits until the poll found the queue finished (or timeout); closes the connection."""
        if self._thread is not None:
            self._thread.join(timeout)
            self._stop.set()
            self._thread.join()
        self._conn.close()
        return self.done_at
