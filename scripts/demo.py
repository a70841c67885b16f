#!/usr/bin/env python3
"""The pgclaim demo: the whole job end to end.

Migrates the database, enqueues 10,000 records, runs 4 worker processes that
claim in batches (1 in 20 records fails its first attempt and is retried after
its backoff; 1 in 1,000 is "poison" and is dead-lettered after 3 attempts),
then "deploys a fix", retries the dead letters with retry_failed, and prints a
summary: throughput, per-status counts and health().

    python scripts/demo.py --database postgresql://...
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import time
from collections import Counter
from datetime import timedelta

from pgclaim import QueueClient, migrate

QUEUE = "demo"


def handle(payload: dict[str, int], attempt: int, fixed: bool) -> None:
    """The demo's handler: raises for the records chosen to fail."""
    n = payload["n"]
    if n % 1000 == 0 and not fixed:
        raise RuntimeError(f"record {n} is poison (needs a fix)")
    if n % 20 == 0 and attempt == 1:
        raise RuntimeError(f"record {n}: flaky first attempt")


def worker(dsn: str, worker_id: str, fixed: bool, done: mp.Event, out: mp.Queue) -> None:
    """One worker process: claim a batch, handle each record, report, repeat."""
    handled = Counter[str]()
    with QueueClient(dsn, max_size=1) as client:
        while not done.is_set():
            batch = client.claim(QUEUE, worker_id, batch_size=100, lease=timedelta(seconds=30))
            if not batch:
                time.sleep(0.05)
                continue
            ok_ids, ok_tokens = [], []
            for rec in batch:
                try:
                    handle(rec.payload, rec.attempt, fixed)
                except RuntimeError as exc:
                    status = client.fail(worker_id, rec.id, str(exc), lease_token=rec.lease_token)
                    handled["failed -> " + status] += 1
                else:
                    ok_ids.append(rec.id)
                    ok_tokens.append(rec.lease_token)
            if ok_ids:
                handled["completed"] += client.complete(worker_id, ok_ids, ok_tokens)
    out.put((worker_id, dict(handled)))


def run_workers(dsn: str, fixed: bool, client: QueueClient, n: int = 4) -> dict[str, Counter[str]]:
    """Runs n worker processes until nothing is pending, scheduled or running."""
    ctx = mp.get_context("spawn")
    done, out = ctx.Event(), ctx.Queue()
    procs = [
        ctx.Process(target=worker, args=(dsn, f"demo-{os.getpid()}-{i}", fixed, done, out))
        for i in range(n)
    ]
    for p in procs:
        p.start()
    while True:
        time.sleep(0.2)
        (s,) = [s for s in client.stats() if s.queue == QUEUE]
        if s.pending + s.scheduled + s.running == 0:
            break
    done.set()
    results = {}
    for _ in procs:
        wid, counts = out.get(timeout=30)
        results[wid] = Counter(counts)
    for p in procs:
        p.join(timeout=30)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", default=os.environ.get("DATABASE_URL"), required=False)
    parser.add_argument("--records", type=int, default=10_000)
    args = parser.parse_args()
    if not args.database:
        parser.error("--database or DATABASE_URL is required")
    dsn = args.database

    applied = migrate(dsn)
    print(f"migrate: applied {len(applied)} migration(s) {' '.join(applied)}".rstrip())
    with QueueClient(dsn) as client:
        client.create_queue(
            QUEUE, lease=timedelta(seconds=30), max_attempts=3,
            backoff_base=timedelta(milliseconds=200), backoff_max=timedelta(seconds=1),
        )
        t0 = time.perf_counter()
        for start in range(0, args.records, 1000):
            client.enqueue_many(QUEUE, [{"n": n} for n in range(start, min(start + 1000, args.records))])
        t_enq = time.perf_counter() - t0
        print(f"enqueue: {args.records:,} records in {t_enq:.2f} s "
              f"({args.records / t_enq:,.0f} records/s, enqueue_many in batches of 1,000)")

        t0 = time.perf_counter()
        first = run_workers(dsn, fixed=False, client=client)
        t_run = time.perf_counter() - t0
        (s,) = [s for s in client.stats() if s.queue == QUEUE]
        print(f"workers: 4 processes, batches of 100: {s.completed:,} completed and "
              f"{s.failed} dead-lettered in {t_run:.2f} s "
              f"({s.completed / t_run:,.0f} records/s, backoff waits included)")
        for wid, counts in sorted(first.items()):
            print(f"  {wid}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))

        retried = client.retry_failed(QUEUE)
        print(f"fix deployed; retry_failed put {retried} dead-lettered records back to pending")
        run_workers(dsn, fixed=True, client=client)

        (s,) = [s for s in client.stats() if s.queue == QUEUE]
        print("\nqueue_stats:")
        for field in ("pending", "scheduled", "running", "completed", "failed", "cancelled"):
            print(f"  {field:<10} {getattr(s, field):>7,}")
        health = client.health()
        print(f"\nhealth: {health['status']}"
              + (f" ({'; '.join(health['reasons'])})" if health["reasons"] else "")
              + f", server {health['server_version'].split()[0]}, schema v{health['schema_version']}")
        ok = s.completed == args.records and s.failed == 0 and s.pending == 0
        print("\nresult: " + ("every record completed exactly once" if ok else "MISMATCH"))
        return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
