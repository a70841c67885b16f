"""Retrying transient failures: ``RetryPolicy`` and the per-call rules.

Which failures are retried, for which calls (``docs/python.md`` has the table):

* the statement surely did not run or was rolled back by the server (a connection that could
  not be opened or was found dead before the statement was sent, 57P01 admin shutdown,
  57P03 cannot connect now, 53300 too many connections, 40001 serialization failure,
  40P01 deadlock, 55P03 lock not available): retried for every call;
* 57014 statement timeout: retried for idempotent calls only;
* the connection broke while the statement was in flight (outcome unknown): retried for
  idempotent calls only; the others raise ``OutcomeUnknown`` at once;
* anything else raises its typed exception at once.
"""
from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import psycopg

from .errors import Kind, OutcomeUnknown, PgclaimError, TransientError, classify, translate
from .instance import instance_id

T = TypeVar("T")

#: the library's logger; every record carries ``instance_id`` and ``queue`` attributes.
logger = logging.getLogger("pgclaim")


@dataclass(frozen=True)
class RetryPolicy:
    """Capped exponential backoff with jitter.

    ``attempts`` is the number of tries in all (1 = no retry); the n-th retry waits
    ``min(cap, base * 2**(n-1))``, drawn in ``[0, that]`` (``jitter="full"``) or in
    ``[that/2, that]`` (``"equal"``) or exactly that (``"none"``). ``deadline`` (seconds)
    bounds the whole call, retries and waits included; ``None`` means no bound.
    """

    attempts: int = 5
    base: float = 0.1
    cap: float = 5.0
    deadline: float | None = 30.0
    jitter: Literal["full", "equal", "none"] = "full"

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"attempts must be at least 1, got {self.attempts}")
        if self.base < 0 or self.cap < 0:
            raise ValueError("base and cap must not be negative")
        if self.jitter not in ("full", "equal", "none"):
            raise ValueError(f"jitter must be 'full', 'equal' or 'none', got {self.jitter!r}")

    def backoff(self, retry: int, rand: Callable[[], float] = random.random) -> float:
        """The wait before retry number ``retry`` (1-based), jitter applied."""
        ceiling = min(self.cap, self.base * 2.0 ** (retry - 1))
        if self.jitter == "full":
            return ceiling * rand()
        if self.jitter == "equal":
            return ceiling / 2 + ceiling / 2 * rand()
        return ceiling

    def delays(self) -> Iterator[float]:
        """The waits between tries: ``attempts - 1`` of them."""
        for n in range(1, self.attempts):
            yield self.backoff(n)


#: no retry at all (a caller's own connection: its transaction is the caller's to redo).
NO_RETRY = RetryPolicy(attempts=1, deadline=None)


def log_extra(queue: str | None, **fields: Any) -> dict[str, Any]:
    """The ``extra`` of a pgclaim log record: ``instance_id``, ``queue`` and ``fields``."""
    return {"instance_id": instance_id(), "queue": queue, **fields}


class Attempt:
    """Tracks whether the statement of the current try may have reached the server."""

    sent: bool = False


class _Retries:
    """The decisions of one call's retries, shared by ``call_with_retry`` and
    ``acall_with_retry`` (which differ only in how they run a try and wait)."""

    def __init__(self, policy: RetryPolicy, operation: str, idempotent: bool,
                 queue: str | None, log: logging.Logger | logging.LoggerAdapter[logging.Logger],
                 clock: Callable[[], float]) -> None:
        self.policy = policy
        self.operation = operation
        self.idempotent = idempotent
        self.queue = queue
        self.log = log
        self.clock = clock
        self.start = clock()
        self.tries = 0

    def wait_after(self, exc: psycopg.Error, attempt: Attempt) -> float:
        """After try ``self.tries`` failed with ``exc``: the wait before the next try, or
        raises (``exc`` translated, or ``OutcomeUnknown``) when there is to be none."""
        tries = self.tries
        kind = classify(exc, sent=attempt.sent)
        err = translate(exc, kind)
        retryable = kind is Kind.ROLLED_BACK or (
            kind in (Kind.TIMEOUT, Kind.LOST) and self.idempotent)
        extra = log_extra(self.queue, operation=self.operation, attempt=tries,
                          sqlstate=exc.sqlstate, error_kind=kind.value)
        if kind is Kind.PERMANENT:
            raise err from exc
        if not retryable:
            self.log.warning("pgclaim: %s not retried (%s, not idempotent): %s",
                             self.operation, kind.value, err, extra=extra)
            if kind is Kind.LOST:
                raise OutcomeUnknown(str(err), exc.sqlstate) from exc
            raise err from exc
        wait = self.policy.backoff(tries) if tries < self.policy.attempts else None
        elapsed = self.clock() - self.start
        if wait is None or (self.policy.deadline is not None
                            and elapsed + wait > self.policy.deadline):
            self.log.error("pgclaim: %s gave up after %d tries in %.1fs (%s): %s",
                           self.operation, tries, elapsed, kind.value, err, extra=extra)
            raise err from exc
        self.log.warning("pgclaim: %s failed (%s), retry %d in %.2fs: %s",
                         self.operation, kind.value, tries, wait, err, extra=extra)
        return wait


def call_with_retry(
    fn: Callable[[Attempt], T],
    *,
    policy: RetryPolicy,
    operation: str,
    idempotent: bool,
    queue: str | None = None,
    log: logging.Logger | logging.LoggerAdapter[logging.Logger] = logger,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """Runs ``fn`` and retries it on transient failures as the rules above say.

    ``fn`` receives an ``Attempt`` and sets ``attempt.sent = True`` just before it sends the
    statement. Non-psycopg exceptions pass through untouched; psycopg ones come out translated.
    """
    retries = _Retries(policy, operation, idempotent, queue, log, clock)
    while True:
        retries.tries += 1
        attempt = Attempt()
        try:
            return fn(attempt)
        except psycopg.Error as exc:
            wait = retries.wait_after(exc, attempt)
        sleep(wait)


async def acall_with_retry(
    fn: Callable[[Attempt], Awaitable[T]],
    *,
    policy: RetryPolicy,
    operation: str,
    idempotent: bool,
    queue: str | None = None,
    log: logging.Logger | logging.LoggerAdapter[logging.Logger] = logger,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """``call_with_retry`` for a coroutine function ``fn``: the same rules, asyncio waits."""
    retries = _Retries(policy, operation, idempotent, queue, log, clock)
    while True:
        retries.tries += 1
        attempt = Attempt()
        try:
            return await fn(attempt)
        except psycopg.Error as exc:
            wait = retries.wait_after(exc, attempt)
        await sleep(wait)


__all__ = [
    "NO_RETRY",
    "Attempt",
    "OutcomeUnknown",
    "PgclaimError",
    "RetryPolicy",
    "TransientError",
    "acall_with_retry",
    "call_with_retry",
    "log_extra",
    "logger",
]
