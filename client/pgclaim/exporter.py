"""Prometheus metrics: the database's (``pgclaim exporter``) and a worker's own
(``pgclaim worker --metrics-port``), served through ``prometheus-client``
(``pip install 'pgclaim[metrics]'``).

``DatabaseCollector`` reads ``pgclaim.metrics()`` at every scrape, so its counters are the
database's and survive restarts of the exporter; ``timed_handler`` wraps a worker's handler
to observe its durations in a histogram. docs/monitoring.md lists every metric.
"""
from __future__ import annotations

import functools
import inspect
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, Self

try:
    import prometheus_client
    from prometheus_client import CollectorRegistry, Histogram, metrics_core
    from prometheus_client.metrics_core import Metric as PromMetric
except ImportError as exc:  # pragma: no cover - the dev install has it
    raise ImportError("pgclaim: metrics need the prometheus-client package: "
                      "pip install 'pgclaim[metrics]'") from exc

from .client import Claimed, QueueClient
from .errors import PgclaimError
from .worker import Fatal, Retry

log = logging.getLogger("pgclaim.exporter")

#: every metric of ``pgclaim.metrics()``: its type, help text and labels. A name the
#: database reports and this table lacks (a newer schema) is shown as an untyped metric.
DATABASE_METRICS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "records": ("gauge", ("Unfinished records by status (pending: due now, scheduled: due "
                "later, running, blocked: behind the head of their FIFO group)."),
                ("queue", "status")),
    "oldest_pending_age_seconds": ("gauge", ("How long the longest-waiting due record has "
                                   "waited (0 when none is due)."), ("queue",)),
    "queue_paused": ("gauge", "1 when the queue is paused, else 0.", ("queue",)),
    "claims_total": ("counter", "Attempts handed out by claim_batch.", ("queue",)),
    "completions_total": ("counter", "Records completed.", ("queue",)),
    "failures_total": ("counter", "Attempts reported failed (fail, fail_batch).", ("queue",)),
    "retries_total": ("counter", ("Failed attempts whose record went back to pending to run "
                      "again."), ("queue",)),
    "reclaims_total": ("counter", "Records taken back from expired leases and dead workers.",
                       ("queue",)),
    "releases_total": ("counter", ("Records given back unprocessed (release, "
                       "deregister_worker)."), ("queue",)),
    "dead_letters_total": ("counter", ("Records finished as failed (out of attempts or "
                           "fatal)."), ("queue",)),
    "cancellations_total": ("counter", "Records cancelled.", ("queue",)),
    "workers": ("gauge", ("Registered workers by status (alive: heard from within "
                "worker_timeout, dead)."), ("status",)),
}
PREFIX = "pgclaim_"

#: the buckets of ``pgclaim_handler_duration_seconds``, 5 ms to 5 minutes
HANDLER_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                   120.0, 300.0)


class DatabaseCollector:
    """A Prometheus collector that reads ``pgclaim.metrics()`` through ``client`` at every
    scrape, plus ``pgclaim_up`` (1 when the read worked, else 0: the scrape then shows no
    other database metric) and ``pgclaim_scrape_duration_seconds``."""

    def __init__(self, client: QueueClient) -> None:
        self.client = client

    def describe(self) -> list[PromMetric]:
        """Nothing: registering the collector must not read the database."""
        return []

    def collect(self) -> Iterator[PromMetric]:
        """The metric families of one scrape."""
        core = metrics_core
        started = time.perf_counter()
        try:
            rows = self.client.metrics()
        except PgclaimError as exc:
            log.warning("pgclaim exporter: reading pgclaim.metrics() failed: %s", exc)
            rows = None
        families: dict[str, tuple[Any, tuple[str, ...]]] = {}
        for row in rows or []:
            if row.metric not in families:
                kind, text, labels = DATABASE_METRICS.get(
                    row.metric, ("unknown", f"pgclaim.metrics() row {row.metric}",
                                 ("queue", "status")))
                name = PREFIX + row.metric
                family: Any
                if kind == "counter":
                    family = core.CounterMetricFamily(name.removesuffix("_total"), text,
                                                      labels=labels)
                elif kind == "gauge":
                    family = core.GaugeMetricFamily(name, text, labels=labels)
                else:
                    family = core.UnknownMetricFamily(name, text, labels=labels)
                families[row.metric] = (family, labels)
            family, labels = families[row.metric]
            values = {"queue": row.queue or "", "status": row.status or ""}
            family.add_metric([values[label] for label in labels], row.value)
        for family, _ in families.values():
            yield family
        up = core.GaugeMetricFamily(PREFIX + "up", "1 when the last read of "
                                    "pgclaim.metrics() worked, else 0.")
        up.add_metric([], 0.0 if rows is None else 1.0)
        yield up
        took = core.GaugeMetricFamily(PREFIX + "scrape_duration_seconds",
                                      "How long reading pgclaim.metrics() took.")
        took.add_metric([], time.perf_counter() - started)
        yield took


def database_registry(client: QueueClient) -> CollectorRegistry:
    """A registry holding only a ``DatabaseCollector`` of ``client``."""
    registry = prometheus_client.CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector(client))
    return registry


def handler_histogram(registry: CollectorRegistry) -> Histogram:
    """``pgclaim_handler_duration_seconds{queue, outcome}`` registered in ``registry``."""
    return prometheus_client.Histogram(
        "pgclaim_handler_duration_seconds",
        "How long the handler ran for one record, by outcome (completed: it returned; retry, "
        "fatal: it raised Retry or Fatal; error: any other exception).",
        ["queue", "outcome"], registry=registry, buckets=HANDLER_BUCKETS)


def _outcome(exc: BaseException | None) -> str:
    if exc is None:
        return "completed"
    if isinstance(exc, Retry):
        return "retry"
    if isinstance(exc, Fatal):
        return "fatal"
    return "error"


def timed_handler(handler: Callable[..., Any], histogram: Histogram,
                  ) -> Callable[..., Any]:
    """``handler`` observing each call's duration in ``histogram`` (labels: the record's
    queue and the outcome). A coroutine function stays one, and the time of a returned
    awaitable is counted until it is done; exceptions pass through unchanged. Arguments
    after the record (a transactional handler's connection) are passed on."""

    def observe(record: Claimed, started: float, exc: BaseException | None) -> None:
        histogram.labels(record.queue, _outcome(exc)).observe(time.perf_counter() - started)

    async def awaited(record: Claimed, started: float, awaitable: Awaitable[Any]) -> Any:
        try:
            result = await awaitable
        except BaseException as exc:
            observe(record, started, exc)
            raise
        observe(record, started, None)
        return result

    if inspect.iscoroutinefunction(handler):
        @functools.wraps(handler)
        async def timed_coroutine(record: Claimed, *rest: Any) -> Any:
            return await awaited(record, time.perf_counter(), handler(record, *rest))
        return timed_coroutine

    @functools.wraps(handler)
    def timed(record: Claimed, *rest: Any) -> Any:
        started = time.perf_counter()
        try:
            result = handler(record, *rest)
        except BaseException as exc:
            observe(record, started, exc)
            raise
        if inspect.isawaitable(result):
            return awaited(record, started, result)
        observe(record, started, None)
        return result

    return timed


def worker_registry() -> CollectorRegistry:
    """A registry for a worker process: its process metrics (CPU, memory, file
    descriptors) and nothing of the database's, which ``pgclaim exporter`` serves once for
    all workers."""
    registry = CollectorRegistry()
    prometheus_client.ProcessCollector(registry=registry)
    return registry


class MetricsServer:
    """Serves ``registry`` as Prometheus text on ``http://host:port/metrics`` from a
    background thread until ``close()``."""

    def __init__(self, registry: CollectorRegistry, port: int, host: str = "0.0.0.0") -> None:
        server, thread = prometheus_client.start_http_server(port, addr=host, registry=registry)
        self._server = server
        self._thread: threading.Thread = thread
        self.port: int = server.server_address[1]
        self.host = host

    def close(self) -> None:
        """Stops serving and frees the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
