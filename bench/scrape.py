"""The cost of one metrics scrape beside millions of finished records.

    .venv/bin/python bench/scrape.py [--finished 5000000] [--queues 10] [--pending 10000]
                                     [--running 200] [--workers 50] [--scrapes 50]

Starts or reuses the throwaway cluster (PGCLAIM_BENCH_URL, else scripts/cluster.sh start),
makes a database bench_scrape loaded from sql/ (kept between runs while it holds
--finished records, so a second run skips the fill), fills pgclaim.finished with that many
finished records (98 % completed, 1 % failed, 1 % cancelled, spread over --queues queues and
the last 7 days, their counters in queue_totals as the functions would have left them),
adds --pending due records, --running held ones and --workers workers, then times
`select * from pgclaim.metrics()` (what `pgclaim exporter` runs per scrape) --scrapes times
and prints the median and the range, the plan of its statement (auto_explain, nested
statements, ANALYZE and BUFFERS), and the scans of pgclaim.finished it made (none). For
comparison it times `select * from pgclaim.queue_stats` the same way, which counts the
dead letters kept and the last minute's completions in pgclaim.finished.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, cluster_url

DB = "bench_scrape"


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--finished", type=int, default=5_000_000)
    p.add_argument("--queues", type=int, default=10)
    p.add_argument("--pending", type=int, default=10_000)
    p.add_argument("--running", type=int, default=200)
    p.add_argument("--workers", type=int, default=50)
    p.add_argument("--scrapes", type=int, default=50)
    return p.parse_args(argv)


def load(cluster: str) -> str:
    """A fresh bench_scrape database loaded from sql/; its URL."""
    with psycopg.connect(cluster, autocommit=True) as conn:
        conn.execute(f"drop database if exists {DB} with (force)")
        conn.execute(f"create database {DB}")
    url = cluster.rsplit("/", 1)[0] + "/" + DB
    files = subprocess.run([str(ROOT / "scripts" / "sql_files.sh")], check=True,
                           capture_output=True, text=True).stdout.split()
    subprocess.run(["psql", url, "-qX", "-v", "ON_ERROR_STOP=1", "-1",
                    *[a for f in files for a in ("-f", str(ROOT / f))]],
                   check=True, capture_output=True)
    return url


def fill(conn: psycopg.Connection[Any], args: argparse.Namespace) -> None:
    """Queues, finished records and their counters, as the functions would have left them."""
    for n in range(args.queues):
        conn.execute("select pgclaim.create_queue(%s)", [f"q{n}"])
    started = time.perf_counter()
    conn.execute(
        """
        insert into pgclaim.finished (id, queue, status, priority, run_at, payload, attempt,
            max_attempts, enqueued_at, finished_at, last_error)
        select g, 'q' || (g %% %(queues)s), s.status, 0, f.at - interval '1 second',
            '{"n": 1}', 1, 5, f.at - interval '1 second', f.at,
            case when s.status = 'failed' then 'boom' end
        from generate_series(1, %(n)s) as g
        cross join lateral (select now() - interval '7 days'
            + (g::float8 / %(n)s) * interval '7 days' as at) as f
        cross join lateral (select (case when g %% 100 = 0 then 'failed'
            when g %% 100 = 1 then 'cancelled' else 'completed' end)::pgclaim.status
            as status) as s
        """, {"n": args.finished, "queues": args.queues})
    conn.execute(
        """
        insert into pgclaim.queue_totals as t (queue, slot, completed, completions,
            dead_letters, cancellations, failures)
        select f.queue, 0, count(*) filter (where f.status = 'completed'),
            count(*) filter (where f.status = 'completed'),
            count(*) filter (where f.status = 'failed'),
            count(*) filter (where f.status = 'cancelled'),
            count(*) filter (where f.status = 'failed')
        from pgclaim.finished as f group by f.queue
        """)
    # the sequence past the ids taken, as enqueue would have left it
    conn.execute("select setval(pg_get_serial_sequence('pgclaim.records', 'id'), %s)",
                 [args.finished])
    conn.execute("vacuum analyze pgclaim.finished")
    print(f"filled {args.finished:,} finished records in "
          f"{time.perf_counter() - started:.0f} s", flush=True)


def in_flight(conn: psycopg.Connection[Any], args: argparse.Namespace) -> None:
    """Pending, running records and workers (replaced at every run)."""
    conn.execute("delete from pgclaim.records")
    conn.execute("delete from pgclaim.workers")
    for n in range(args.queues):
        per = args.pending // args.queues
        conn.execute("select pgclaim.enqueue_batch(%s, array_fill('{}'::jsonb, array[%s]))",
                     [f"q{n}", per])
        conn.execute("select count(*) from pgclaim.claim_batch(%s, 'w0', %s)",
                     [f"q{n}", args.running // args.queues])
    for w in range(args.workers):
        conn.execute("select pgclaim.register_worker(%s)", [f"w{w}"])
    conn.execute("analyze pgclaim.records")


def timed(conn: psycopg.Connection[Any], query: str, n: int) -> list[float]:
    out = []
    for _ in range(n):
        started = time.perf_counter()
        conn.execute(query).fetchall()
        out.append((time.perf_counter() - started) * 1000)
    return out


def finished_scans(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("select seq_scan + coalesce(idx_scan, 0) from pg_stat_xact_user_tables"
                       " where relid = 'pgclaim.finished'::regclass").fetchone()
    return int(row[0]) if row else 0


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    cluster = cluster_url()
    url = cluster.rsplit("/", 1)[0] + "/" + DB
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            have = conn.execute("select count(*) from pgclaim.finished").fetchone()
    except psycopg.Error:
        have = None
    if have != (args.finished,):
        url = load(cluster)
        with psycopg.connect(url, autocommit=True) as conn:
            fill(conn, args)
    with psycopg.connect(url, autocommit=True) as conn:
        in_flight(conn, args)
        size = conn.execute("select pg_size_pretty(pg_total_relation_size('pgclaim.finished'))"
                            ).fetchone()
        print(f"database: {args.finished:,} finished records ({size[0] if size else '?'}), "
              f"{args.queues} queues, {args.pending:,} pending, {args.running} running, "
              f"{args.workers} workers; server {conn.info.server_version}", flush=True)
        for name, query in (("metrics()", "select * from pgclaim.metrics()"),
                            ("queue_stats", "select * from pgclaim.queue_stats")):
            timed(conn, query, 3)  # warm
            ms = timed(conn, query, args.scrapes)
            print(f"{name:12} median {statistics.median(ms):.2f} ms "
                  f"(min {min(ms):.2f}, max {max(ms):.2f}) over {args.scrapes} scrapes")
        with conn.transaction():
            before = finished_scans(conn)
            rows = conn.execute("select count(*) from pgclaim.metrics()").fetchone()
            print(f"metrics(): {rows[0] if rows else 0} rows; scans of pgclaim.finished: "
                  f"{finished_scans(conn) - before}")
        conn.execute("load 'auto_explain'")
        for setting in ("log_min_duration = 0", "log_nested_statements = on",
                        "log_analyze = on", "log_buffers = on", "log_timing = on",
                        "log_level = notice"):
            conn.execute(f"set auto_explain.{setting}")
        plans: list[str] = []
        conn.add_notice_handler(lambda d: plans.append(d.message_primary or ""))
        conn.execute("select * from pgclaim.metrics()").fetchall()
        print("\nplan of the metrics() statement (auto_explain):")
        for plan in plans:
            if "Query Text" in plan and ("queue_totals" in plan or "records_claim_idx" in plan
                                        or "from pgclaim.records" in plan):
                print(plan)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
