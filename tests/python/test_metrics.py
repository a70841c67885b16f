"""Metrics: QueueClient.metrics(), dead_letters() and stuck_records(); ``pgclaim exporter``
and ``pgclaim worker --metrics-port`` scraped over HTTP and parsed with
``prometheus_client.parser``, as Prometheus would read them."""
from __future__ import annotations

import asyncio
import os
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from pgdb import freeze_clock
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from served import PGCLAIM, Served

from pgclaim import Claimed, Fatal, QueueClient, Retry
from pgclaim.exporter import DatabaseCollector, handler_histogram, timed_handler

HERE = Path(__file__).resolve().parent
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(served: Served) -> Samples:
    """Every sample of one scrape of ``served``, by (name, sorted labels)."""
    with urllib.request.urlopen(served.url, timeout=30) as reply:
        assert reply.status == 200
        text = reply.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


@pytest.fixture
def exporters(dsn: str) -> Iterator[list[Served]]:
    started: list[Served] = []
    yield started
    for served in started:
        served.stop()


def exporter(dsn: str, started: list[Served]) -> Served:
    served = Served("exporter", "--database", dsn, "--port", "0", "--host", "127.0.0.1")
    started.append(served)
    return served


def counters(samples: Samples, queue: str) -> dict[str, float]:
    """The ``*_total`` samples of ``queue``, by name."""
    return {name: value for (name, labels), value in samples.items()
            if name.endswith("_total") and labels == (("queue", queue),)}


def test_exporter_counters_follow_the_records_and_survive_a_restart(
        dsn: str, conn: psycopg.Connection[Any], exporters: list[Served]) -> None:
    conn.execute("select pgclaim.create_queue('mq', max_attempts => 2, lease => '1 minute')")
    served = exporter(dsn, exporters)
    first = scrape(served)
    assert first[("pgclaim_up", ())] == 1.0
    assert set(counters(first, "mq")) == {
        "pgclaim_claims_total", "pgclaim_completions_total", "pgclaim_failures_total",
        "pgclaim_retries_total", "pgclaim_reclaims_total", "pgclaim_releases_total",
        "pgclaim_dead_letters_total", "pgclaim_cancellations_total"}
    assert set(counters(first, "mq").values()) == {0.0}

    ids = [r[0] for r in conn.execute(
        "select pgclaim.enqueue_batch('mq', array['1','2','3','4']::jsonb[])")]
    pending = scrape(served)
    assert pending[("pgclaim_records", (("queue", "mq"), ("status", "pending")))] == 4.0

    claimed = conn.execute("select id from pgclaim.claim_batch('mq', 'w1', 4)").fetchall()
    assert sorted(r[0] for r in claimed) == ids
    running = scrape(served)
    assert running[("pgclaim_records", (("queue", "mq"), ("status", "running")))] == 4.0
    assert counters(running, "mq")["pgclaim_claims_total"] == 4.0

    conn.execute("select pgclaim.complete('w1', %s)", [ids[:1]])
    conn.execute("select pgclaim.fail('w1', %s, 'boom')", [ids[1]])
    conn.execute("select pgclaim.fail('w1', %s, 'boom', fatal => true)", [ids[2]])
    freeze_clock(conn, "2100-01-01 00:00:00+00")  # the fourth record's lease has expired
    assert conn.execute("select pgclaim.reclaim_orphans()").fetchone() == (1,)
    after = scrape(served)
    assert counters(after, "mq") == {
        "pgclaim_claims_total": 4.0, "pgclaim_completions_total": 1.0,
        "pgclaim_failures_total": 2.0, "pgclaim_retries_total": 1.0,
        "pgclaim_reclaims_total": 1.0, "pgclaim_releases_total": 0.0,
        "pgclaim_dead_letters_total": 1.0, "pgclaim_cancellations_total": 0.0}
    assert after[("pgclaim_records", (("queue", "mq"), ("status", "pending")))] == 2.0
    assert after[("pgclaim_oldest_pending_age_seconds", (("queue", "mq"),))] > 0

    # A new exporter process reads the same counters: they live in the database.
    assert served.stop() == 0
    again = scrape(exporter(dsn, exporters))
    assert counters(again, "mq") == counters(after, "mq")
    assert again[("pgclaim_workers", (("status", "alive"),))] == 0.0


def test_a_scrape_without_the_database_says_so(dsn: str) -> None:
    with QueueClient(dsn) as client:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(DatabaseCollector(client))
        assert registry.get_sample_value("pgclaim_up") == 1.0
    broken = QueueClient("postgresql://postgres@127.0.0.1:1/none", check_schema=False,
                         min_size=0, pool_timeout=0.5)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector(broken))
    try:
        assert registry.get_sample_value("pgclaim_up") == 0.0
        assert registry.get_sample_value("pgclaim_records", {"queue": "mq",
                                                             "status": "pending"}) is None
    finally:
        broken.close()


def test_client_reads_metrics_dead_letters_and_stuck_records(
        dsn: str, conn: psycopg.Connection[Any]) -> None:
    conn.execute("select pgclaim.create_queue('cq', max_attempts => 1, lease => '1 minute')")
    conn.execute("select pgclaim.enqueue_batch('cq', array['1','2']::jsonb[])")
    with QueueClient(dsn) as client:
        first, second = client.claim("cq", worker_id="w1", batch_size=2)
        client.fail("w1", first, "it broke")
        metrics = {(m.metric, m.queue, m.status): m.value for m in client.metrics()}
        assert metrics[("dead_letters_total", "cq", None)] == 1.0
        assert metrics[("records", "cq", "running")] == 1.0
        assert ("workers", None, "alive") in metrics
        [dead] = client.dead_letters("cq")
        assert (dead.id, dead.last_error, dead.attempt) == (first.id, "it broke", 1)
        assert client.dead_letters(max_records=1) == [dead]
        assert client.stuck_records() == []
        freeze_clock(conn, "2100-01-01 00:00:00+00")
        [stuck] = client.stuck_records()
        assert (stuck.id, stuck.reason, stuck.worker_id) == (second.id, "lease expired", "w1")


def record(queue: str = "hq") -> Claimed:
    now = datetime.now(UTC)
    return Claimed(1, queue, {}, 1, 5, 0, now, now, now, 1)


def test_timed_handler_observes_each_outcome_and_keeps_coroutines() -> None:
    registry = CollectorRegistry()
    histogram = handler_histogram(registry)

    def plain(rec: Claimed) -> str:
        if rec.payload.get("raise") == "retry":
            raise Retry()
        if rec.payload.get("raise") == "fatal":
            raise Fatal()
        if rec.payload.get("raise") == "error":
            raise KeyError("x")
        return "done"

    async def coroutine(rec: Claimed) -> str:
        await asyncio.sleep(0.01)
        return "done"

    timed = timed_handler(plain, histogram)
    assert timed(record()) == "done"
    for kind, exc in (("retry", Retry), ("fatal", Fatal), ("error", KeyError)):
        rec = Claimed(**{**record().__dict__, "payload": {"raise": kind}})
        with pytest.raises(exc):
            timed(rec)
    timed_coroutine = timed_handler(coroutine, histogram)
    assert asyncio.iscoroutinefunction(timed_coroutine)
    assert timed_coroutine.__name__ == "coroutine"
    assert asyncio.run(timed_coroutine(record("aq"))) == "done"

    def count(queue: str, outcome: str) -> float | None:
        return registry.get_sample_value("pgclaim_handler_duration_seconds_count",
                                         {"queue": queue, "outcome": outcome})

    assert [count("hq", o) for o in ("completed", "retry", "fatal", "error")] == [1, 1, 1, 1]
    assert count("aq", "completed") == 1
    took = registry.get_sample_value("pgclaim_handler_duration_seconds_sum",
                                     {"queue": "aq", "outcome": "completed"})
    assert took is not None and took >= 0.01


def test_worker_serves_its_handler_durations(dsn: str, conn: psycopg.Connection[Any],
                                             exporters: list[Served]) -> None:
    conn.execute("select pgclaim.create_queue('wq', max_attempts => 3)")
    conn.execute("""select pgclaim.enqueue_batch('wq', array['{"outcome": "ok"}',
        '{"outcome": "ok"}', '{"outcome": "retry"}', '{"outcome": "fatal"}',
        '{"outcome": "boom"}']::jsonb[])""")
    worker = Served("worker", "workers_fixture.outcomes:by_payload", "--queue", "wq",
                    "--database", dsn, "--metrics-port", "0", "--metrics-host", "127.0.0.1",
                    "--poll-interval", "0.2", env={"PYTHONPATH": str(HERE)})
    exporters.append(worker)
    expected = {"completed": 2.0, "retry": 1.0, "fatal": 1.0, "error": 1.0}
    deadline = time.monotonic() + 60
    while True:
        samples = scrape(worker)
        got = {dict(labels)["outcome"]: value for (name, labels), value in samples.items()
               if name == "pgclaim_handler_duration_seconds_count"
               and dict(labels).get("queue") == "wq"}
        if got == expected or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert got == expected, worker.lines
    assert ("pgclaim_handler_duration_seconds_bucket",
            (("le", "+Inf"), ("outcome", "completed"), ("queue", "wq"))) in samples
    assert not any(name.startswith("pgclaim_records") for name, _ in samples)
    assert worker.stop() == 0


def test_counters_equal_the_records_after_two_workers_race(
        dsn: str, conn: psycopg.Connection[Any]) -> None:
    """Two worker processes drain a queue of successes, errors (retried, then dead) and fatal
    failures, reporting in batches from several threads into shared counter slots: the
    counters then equal what the finished records say."""
    conn.execute("select pgclaim.create_queue('race', max_attempts => 2,"
                 " backoff_base => '1 millisecond', backoff_max => '1 millisecond')")
    outcomes = ["ok", "ok", "ok", "boom", "fatal"] * 60
    conn.execute("select pgclaim.enqueue_batch('race', %s::jsonb[])",
                 [[f'{{"outcome": "{o}"}}' for o in outcomes]])
    def workers(n: int) -> None:
        procs = [subprocess.Popen(
            [PGCLAIM, "worker", "workers_fixture.outcomes:by_payload", "--queue", "race",
             "--database", dsn, "--concurrency", "4", "--batch-size", "10", "--until-empty"],
            env={**os.environ, "PYTHONPATH": str(HERE)}, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True) for _ in range(n)]
        for proc in procs:
            _, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err

    workers(2)
    # A worker may stop while a retry is due a millisecond later: one more drains it.
    for _ in range(20):
        if conn.execute("select count(*) from pgclaim.records").fetchone() == (0,):
            break
        time.sleep(0.01)
        workers(1)
    truth = conn.execute(
        """select count(*) filter (where status = 'completed'),
                  count(*) filter (where status = 'failed'),
                  sum(attempt),
                  sum(attempt) filter (where status = 'failed')
                    + sum(attempt - 1) filter (where status = 'completed')
           from pgclaim.finished where queue = 'race'""").fetchone()
    assert truth is not None and truth[:2] == (180, 120)
    completed, dead, attempts, failed_attempts = (float(v) for v in truth)
    with QueueClient(dsn) as client:
        m = {x.metric: x.value for x in client.metrics() if x.queue == "race"}
    assert m["completions_total"] == completed
    assert m["dead_letters_total"] == dead
    assert m["failures_total"] == failed_attempts == 60 * 2 + 60
    assert m["retries_total"] == m["failures_total"] - m["dead_letters_total"]
    # each record's attempt counts its claims, less those given back by a release
    assert m["claims_total"] == attempts + m["releases_total"]
    assert m["reclaims_total"] == 0.0
