"""Runs W client processes that start together and report their results to the parent."""
from __future__ import annotations

import multiprocessing as mp
import queue as queue_mod
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from common import rss_mb

# A setup function runs in the child before the start signal (connect, prepare) and returns
# the measured function; that one returns a dict of results.
Setup = Callable[..., Callable[[], dict[str, Any]]]

CTX = mp.get_context("fork")


@dataclass
class Outcome:
    """What a group of processes did: wall time from the start signal to the last finish."""

    elapsed: float
    results: list[dict[str, Any]]
    started_at: float
    """wall-clock time (time.time) of the start signal"""


def _child(setup: Setup, args: tuple[Any, ...], ready: Any, start: Any, out: Any) -> None:
    try:
        fn = setup(*args)
        ready.wait()
        start.wait()
        res = fn()
        res["end"] = time.monotonic()
        res["rss_mb"] = rss_mb()
        out.put(res)
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        out.put({"error": f"{exc!r}\n{traceback.format_exc()}"})


def run_group(setup: Setup, args_list: list[tuple[Any, ...]], timeout: float = 900.0) -> Outcome:
    """Starts one process per args tuple, releases them at once, waits for all of them."""
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
        errors = []
        while True:
            try:
                errors.append(out.get_nowait())
            except queue_mod.Empty:
                break
        raise RuntimeError(f"workers did not get ready: {errors}") from None
    t0 = time.monotonic()
    t0_wall = time.time()
    start.set()
    results: list[dict[str, Any]] = []
    deadline = t0 + timeout
    try:
        while len(results) < n:
            results.append(out.get(timeout=max(1.0, deadline - time.monotonic())))
    finally:
        for p in procs:
            p.join(timeout=10)
            if p.is_alive():
                p.kill()
                p.join()
    errors = [r["error"] for r in results if "error" in r]
    if errors:
        raise RuntimeError("worker failed: " + errors[0])
    elapsed = max(r["end"] for r in results) - t0
    return Outcome(elapsed, results, t0_wall)
