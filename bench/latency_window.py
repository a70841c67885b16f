"""What latency() and health() cost beside millions of finished records.

    .venv/bin/python bench/latency_window.py [--finished 5000000] [--window-records 6000]
                                             [--calls 20] [--keep]

Loads pgclaim into database bench_latency_window, writes --finished finished records of
five queues spread over the last 7 days in the order they finished (as complete leaves
them: pgclaim.finished grows in finish order), the last --window-records of them (one
queue's) within the last 5 minutes, analyses, then times --calls calls of
latency(queue, '5 minutes'), of latency over the whole 7 days of that queue's records for
comparison, and of health(), and prints each median (min-max) with the EXPLAIN ANALYZE of
latency's window scan. Server settings are the cluster's (scripts/cluster.sh: the defaults,
with fsync and synchronous_commit as it sets them); say so beside any figure.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Sample, cluster_url, connect, db_url, drop_db, fmt_sample, load_pgclaim, log

DB = "bench_latency_window"

FILL = """
insert into pgclaim.finished (
    id, queue, status, priority, run_at, payload, attempt, max_attempts, worker_id,
    lease_token, lease_for, enqueued_at, finished_at, holder_role, first_claimed_at, claimed_at)
select
    g, 'q' || (g %% 5), 'completed', 0, t - interval '2 seconds', '{}', 1, 5, 'w',
    g, interval '5 minutes', t - interval '2 seconds', t, null,
    t - interval '1 second' - (g %% 7) * interval '10 ms', t - (g %% 13) * interval '50 ms'
from pg_catalog.generate_series(1, %(old)s) as g,
    lateral (select now() - interval '7 days'
             + (interval '7 days' - interval '10 minutes') * g / %(old)s as t) as s
"""

WINDOW = """
insert into pgclaim.finished (
    id, queue, status, priority, run_at, payload, attempt, max_attempts, worker_id,
    lease_token, lease_for, enqueued_at, finished_at, holder_role, first_claimed_at, claimed_at)
select
    %(old)s + g, 'q0', 'completed', 0, t - interval '2 seconds', '{}', 1, 5, 'w',
    g, interval '5 minutes', t - interval '2 seconds', t, null,
    t - interval '1 second' - (g %% 7) * interval '10 ms', t - (g %% 13) * interval '50 ms'
from pg_catalog.generate_series(1, %(window)s) as g,
    lateral (select now() - interval '4 minutes 50 seconds'
             + interval '4 minutes 40 seconds' * g / %(window)s as t) as s
"""


def timed(conn: object, sql: str, calls: int) -> Sample:
    sample = Sample()
    for _ in range(calls):
        start = time.perf_counter()
        conn.execute(sql).fetchall()  # type: ignore[attr-defined]
        sample.add((time.perf_counter() - start) * 1000)
    return sample


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--finished", type=int, default=5_000_000)
    p.add_argument("--window-records", type=int, default=6000)
    p.add_argument("--calls", type=int, default=20)
    p.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = p.parse_args(argv)
    cluster = cluster_url()
    load_pgclaim(cluster, DB)
    url = db_url(cluster, DB)
    try:
        with connect(url) as conn:
            for q in range(5):
                conn.execute("select pgclaim.create_queue(%s)", [f"q{q}"])
            start = time.perf_counter()
            old = args.finished - args.window_records
            conn.execute(FILL, {"old": old})
            conn.execute(WINDOW, {"old": old, "window": args.window_records})
            conn.execute("vacuum analyze pgclaim.finished")
            log(f"latency_window: {args.finished:,} finished records written in "
                f"{time.perf_counter() - start:.0f} s")
            size = conn.execute("select pg_size_pretty(pg_total_relation_size("
                                "'pgclaim.finished'))").fetchone()
            plan = conn.execute(
                "explain (analyze, buffers, costs off) select f.enqueued_at, f.first_claimed_at,"
                " f.claimed_at, f.finished_at from pgclaim.finished as f"
                " where f.finished_at > now() - interval '5 minutes' and f.finished_at <= now()"
                " and f.queue = 'q0' and f.status in ('completed', 'failed')"
                " and f.first_claimed_at is not null").fetchall()
            rows = [
                ("latency('q0', '5 minutes')",
                 timed(conn, "select * from pgclaim.latency('q0', '5 minutes')", args.calls)),
                ("latency('q0', '7 days') (the whole table, for comparison)",
                 timed(conn, "select * from pgclaim.latency('q0', '7 days')",
                       max(1, args.calls // 10))),
                ("health()", timed(conn, "select pgclaim.health(max_xact_age => '1 day')",
                                   args.calls)),
            ]
            server = conn.execute("select current_setting('server_version'),"
                                  " current_setting('fsync'),"
                                  " current_setting('synchronous_commit')").fetchone()
        print(f"pgclaim.finished: {args.finished:,} records ({size[0] if size else '?'}), "
              f"{args.window_records:,} of them in the last 5 minutes (queue q0); "
              f"PostgreSQL {server[0] if server else '?'}, fsync={server[1] if server else '?'},"
              f" synchronous_commit={server[2] if server else '?'}")
        print("call | ms per call, median (min-max)")
        print("---|---")
        for name, sample in rows:
            print(f"{name} | {fmt_sample(sample, 1)}")
        print("\nEXPLAIN ANALYZE of latency's window scan:")
        for (line,) in plan:
            print("    " + line)
    finally:
        if not args.keep:
            drop_db(cluster, DB)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
