"""pgclaim benchmark suite.

    .venv/bin/python bench/run.py [--quick] [--repeat N] [--only compare,latency,...]
                                  [--growth 0,1000000,5000000] [--write-docs]

Starts or reuses the throwaway cluster (PGCLAIM_BENCH_URL, else scripts/cluster.sh start),
creates its own databases (bench_*), runs every workload --repeat times with the systems
interleaved, and prints medians (min-max), the ratios of one run and the targets. The scale
workloads (scale-pending, scale-queues, scale-procs) run only when named in --only.
--write-docs writes the tables into docs/performance.md (a --quick run writes
bench/out/performance-quick.md instead: smoke figures are never headline figures).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from dataclasses import replace
from math import isnan
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import psycopg
import systems
import workloads as wl
from common import ROOT, Sample, admin, cluster_url, fmt, fmt_sample, log, ratio

DOCS_MARKER = "<!-- bench/run.py --write-docs replaces everything above this line -->"
WORKLOADS = ("enqueue", "compare", "drain", "latency", "growth", "seeds")
SCALE = ("scale-pending", "scale-queues", "scale-procs")
LABEL = {
    "pgclaim": "pgclaim SQL API",
    "raw": "raw-SQL ceiling",
    "worker": "pgclaim Worker",
    "bare": "bare INSERT",
    "bare_unnest": "bare INSERT ... SELECT unnest",
    "procrastinate": "procrastinate",
    "pgqueuer": "pgqueuer (asyncpg)",
    "graphile": "graphile-worker (fast config)",
    "pgclaim-listen": "pgclaim SQL API, LISTEN/NOTIFY",
    "pgclaim-poll": "pgclaim SQL API, polling",
}
# The producers of the enqueue workload are the peers' own clients, whatever their workers' set-up.
ENQUEUE_LABEL = {"graphile": "graphile-worker (add_job / add_jobs)",
                 "pgqueuer": "pgqueuer (Queries.enqueue, asyncpg)"}
NOT_USED = "not used by these workloads"
TARGET_WORKER_SQL = 0.85
TARGET_WORKER_PEER = 2.0
TARGET_SQL_CEILING = 0.85


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The command line."""
    p = argparse.ArgumentParser(description="pgclaim benchmark suite")
    p.add_argument("--quick", action="store_true", help="small sizes: a smoke run (~3 min)")
    p.add_argument("--repeat", type=int, help="runs of each measurement (default 3, quick 1)")
    p.add_argument("--only", help="comma-separated workloads: " + ",".join(WORKLOADS + SCALE))
    p.add_argument("--growth", help="finished-record counts, e.g. 0,1000000,5000000")
    p.add_argument("--compare-records", type=int, help="records per side-by-side drain")
    p.add_argument("--compare-workers", help="side-by-side W values, e.g. 4,16")
    p.add_argument("--drain-records", type=int, help="records per drain-grid run")
    p.add_argument("--workers", help="drain-grid worker counts, e.g. 1,4,16")
    p.add_argument("--batches", help="drain-grid batch sizes, e.g. 1,10,100,1000")
    p.add_argument("--scale-pending", type=int, help="scale-pending: pending records")
    p.add_argument("--scale-queues", type=int, help="scale-queues: number of queues")
    p.add_argument("--scale-queue-records", type=int, help="scale-queues: records per queue")
    p.add_argument("--scale-procs", type=int, help="scale-procs: client processes")
    p.add_argument("--scale-procs-records", type=int, help="scale-procs: records per drain")
    p.add_argument("--graphile-local-queue", type=int,
                   help="graphile-worker localQueue.size (default: max(W + 1, 500))")
    p.add_argument("--pgqueuer-procs", type=int,
                   help="pgqueuer processes, W / procs QueueManagers each (default: W)")
    p.add_argument("--procrastinate-procs", type=int,
                   help="procrastinate processes, concurrency W / procs each (default: 1)")
    p.add_argument("--no-peers", action="store_true", help="pgclaim and the bare baselines only")
    p.add_argument("--write-docs", action="store_true", help="write docs/performance.md")
    return p.parse_args(argv)


def ints(text: str) -> tuple[int, ...]:
    """'1,4,16' -> (1, 4, 16)."""
    return tuple(int(x) for x in text.split(",") if x.strip())


def make_config(args: argparse.Namespace, cluster: str) -> wl.Config:
    """Sizes from the flags."""
    cfg = wl.Config(cluster=cluster)
    if args.quick:
        cfg = wl.Config(
            cluster=cluster, repeat=1, quick=True, enqueue_single=500, enqueue_batches=10,
            compare_records=2_000, compare_workers=(4,), drain_records=2_000,
            drain_per_batch=1_000, workers=(4,), batches=(1, 100), latency_records=100,
            growth=(0, 100_000), growth_records=5_000, seed_records=1_000,
            scale_pending=20_000, scale_queues=50, scale_queue_records=20, scale_procs=8,
            scale_procs_records=4_000,
        )
    for flag, name in (("repeat", "repeat"), ("compare_records", "compare_records"),
                       ("drain_records", "drain_records"), ("scale_pending", "scale_pending"),
                       ("scale_queues", "scale_queues"),
                       ("scale_queue_records", "scale_queue_records"),
                       ("scale_procs", "scale_procs"),
                       ("scale_procs_records", "scale_procs_records")):
        if getattr(args, flag):
            setattr(cfg, name, getattr(args, flag))
    for flag in ("growth", "workers", "batches", "compare_workers"):
        if getattr(args, flag):
            setattr(cfg, flag, ints(getattr(args, flag)))
    peer = cfg.peer_cfg
    if args.graphile_local_queue:
        peer = replace(peer, graphile_local_queue=args.graphile_local_queue)
    if args.pgqueuer_procs:
        peer = replace(peer, pgqueuer_procs=args.pgqueuer_procs)
    if args.procrastinate_procs:
        peer = replace(peer, procrastinate_procs=args.procrastinate_procs)
    cfg.peer_cfg = peer
    return cfg


# ---------------------------------------------------------------------------- report


def table(head: list[str], rows: list[list[str]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def verdict(ok: bool | None) -> str:
    """PASS / FAIL / n/a."""
    return "n/a" if ok is None else ("PASS" if ok else "FAIL")


def pct(x: float) -> str:
    """A ratio as a percentage."""
    return "-" if isnan(x) else f"{x * 100:.1f} %"


def times(x: float) -> str:
    """A ratio as a factor."""
    return "-" if isnan(x) else f"{x:.2f}x"


def version_of(system: str, v: dict[str, str], server: str) -> str:
    """The version cell of a system."""
    return {
        "raw": f"PostgreSQL {server}",
        "pgclaim": f"pgclaim {v['pgclaim']} (psycopg {v['psycopg']})",
        "worker": f"pgclaim {v['pgclaim']} (psycopg {v['psycopg']})",
        "pgqueuer": f"pgqueuer {v['pgqueuer']} (asyncpg {v['asyncpg']}, uvloop {v['uvloop']})",
        "graphile": f"graphile-worker {v['graphile-worker']} (node {v['node']})",
        "procrastinate": f"procrastinate {v['procrastinate']} (psycopg {v['psycopg']})",
    }.get(system, "")


def _compare_section(cfg: wl.Config, d: dict[tuple[str, int], wl.DrainCell],
                     v: dict[str, str], server: str, targets: list[list[str]]) -> str:
    rows = []
    for w in cfg.compare_workers:
        for s in wl.COMPARED:
            c = d.get((s, w))
            if c is None:
                continue
            rows.append([str(w), LABEL[s], f"{c.records:,}", fmt_sample(c.rate),
                         fmt_sample(c.rate_exit), fmt(c.commits.median, 3),
                         fmt(c.statements.median, 3), fmt(c.rss.median, 0)])
    text = (f"### 2. Side by side: drain of {cfg.compare_records:,} pre-enqueued no-op records,"
            f" batch {cfg.compare_batch}\n\n" + table(
                ["W", "system", "records", "records/s to last completion, median (min-max)",
                 "records/s to exit, median (min-max)", "commits/record", "statements/record",
                 "client RSS MB (max)"], rows))

    def r(a: str, b: str, w: int, exit_: bool = False) -> float:
        ca, cb = d.get((a, w)), d.get((b, w))
        if ca is None or cb is None:
            return float("nan")
        return ratio(ca.rate_exit, cb.rate_exit) if exit_ else ratio(ca.rate, cb.rate)

    rrows = []
    checks = [("worker", "pgclaim", TARGET_WORKER_SQL), ("worker", "pgqueuer", TARGET_WORKER_PEER),
              ("worker", "graphile", TARGET_WORKER_PEER), ("worker", "procrastinate", None),
              ("pgclaim", "raw", TARGET_SQL_CEILING), ("pgclaim", "pgqueuer", None),
              ("pgclaim", "graphile", None)]
    for w in cfg.compare_workers:
        for a, b, goal in checks:
            last, ex = r(a, b, w), r(a, b, w, True)
            if isnan(last) and isnan(ex):
                continue
            ok = None if goal is None or isnan(last) else last >= goal
            name = f"{LABEL[a]} / {LABEL[b]}, W={w}"
            rrows.append([name, times(last), times(ex),
                          f">= {goal:.2f}x" if goal else "-", verdict(ok) if goal else ""])
            if goal is not None:
                targets.append([name + " (to last completion; to exit in brackets)",
                                f">= {goal:.2f}x", f"{times(last)} ({times(ex)})",
                                verdict(ok)])
    text += ("\n\nRatios of medians from this run (targets judged on the time to the last"
             " completion):\n\n" + table(["ratio", "to last completion", "to exit", "goal",
                                            "result"], rrows))
    srows = [[LABEL[s], version_of(s, v, server), "; ".join(
        f"W={w}: {systems.settings(s, w, cfg.compare_batch, cfg.peer_cfg)}"
        for w in cfg.compare_workers)] for s in wl.COMPARED if any(
        (s, w) in d for w in cfg.compare_workers)]
    text += "\n\nHow each system ran:\n\n" + table(["system", "version", "settings"], srows)
    return text


def report(cfg: wl.Config, res: dict[str, Any], command: str) -> tuple[str, list[list[str]]]:
    """The Markdown sections and the targets table rows."""
    out: list[str] = []
    targets: list[list[str]] = []
    v = systems.versions()
    server = server_version(cfg)

    if "enqueue" in res:
        e = res["enqueue"]
        rows = []
        for kind, title in (("single", "one record per call"),
                            ("batch", f"batches of {cfg.batch_of:,}")):
            base = max((e[kind][b] for b in ("bare", "bare_unnest") if b in e[kind]),
                       key=lambda x: x.median)
            for s, sample in e[kind].items():
                rows.append([title, ENQUEUE_LABEL.get(s, LABEL[s]), fmt_sample(sample),
                             f"{ratio(sample, base):.2f}"])
        out.append("### 1. Enqueue (records/s, one connection, autocommit)\n\n" + table(
            ["mode", "system", "records/s median (min-max)",
             "ratio to the faster bare INSERT"], rows))
        r1 = ratio(e["single"]["pgclaim"], e["single"]["bare"])
        r2 = ratio(e["batch"]["pgclaim"], max(e["batch"]["bare"], e["batch"]["bare_unnest"],
                                              key=lambda x: x.median))
        targets.append(["enqueue one per call vs bare INSERT", ">= 90 %", pct(r1),
                        verdict(r1 >= 0.9)])
        targets.append(["enqueue_batch vs the faster bare multi-row INSERT", ">= 80 %", pct(r2),
                        verdict(r2 >= 0.8)])

    if "compare" in res:
        out.append(_compare_section(cfg, res["compare"], v, server, targets))
        d = res["compare"]
        wmax = max(cfg.compare_workers)
        if ("worker", wmax) in d:
            rss = d[("worker", wmax)].rss.median
            targets.append([f"pgclaim Worker RSS at W={wmax}", "< 80 MB", fmt(rss, 0) + " MB",
                            verdict(rss < 80 if not isnan(rss) else None)])

    if "drain" in res:
        d3: dict[tuple[str, int, int], wl.DrainCell] = res["drain"]
        rows = []
        for w in cfg.workers:
            for b in cfg.batches:
                raw = d3.get(("raw", w, b))
                for s in ("pgclaim", "raw", "worker"):
                    c = d3.get((s, w, b))
                    if c is None:
                        continue
                    rr = "" if raw is None or s == "raw" else f"{ratio(c.rate, raw.rate):.2f}"
                    rows.append([str(w), f"{b:,}", LABEL[s], f"{c.records:,}",
                                 fmt_sample(c.rate), fmt_sample(c.rate_exit), rr,
                                 fmt(c.commits.median, 2), fmt(c.statements.median, 2),
                                 fmt(c.rss.median, 0)])
        out.append(
            "### 3. pgclaim drain grid (W processes, one connection each, autocommit)\n\n"
            + table(["W", "batch", "system", "records", "records/s to last completion",
                     "records/s to exit", "ratio to ceiling", "commits/record",
                     "statements/record", "client RSS MB (max)"], rows))

    if "latency" in res:
        lat = res["latency"]
        rows = [[LABEL[s], fmt_sample(x["p50"], 2), fmt_sample(x["p99"], 2),
                 fmt_sample(x["max"], 1), fmt(x["call"].median, 2)] for s, x in lat.items()]
        g = cfg.peer_cfg.graphile_options(cfg.latency_consumers)
        out.append(
            f"### 4. Pickup latency ({cfg.latency_records} records enqueued one at a time "
            f"{cfg.latency_gap * 1000:.0f} ms apart, {cfg.latency_consumers} idle consumers; "
            f"polling every {cfg.poll_interval * 1000:.0f} ms)\n\n" + table(
                ["system", "p50 ms", "p99 ms", "max ms", "enqueue call p50 ms"], rows)
            + f"\n\nThe pgclaim Worker: {cfg.latency_consumers} processes, one Worker each"
            f" (defaults, LISTEN on), timed to its handler's start. graphile-worker: its fast"
            f" configuration at W={cfg.latency_consumers}, one process (concurrency"
            f" {g['concurrentJobs']}, localQueue.size {g['localQueue']['size']},"
            f" completeJobBatchDelay {g['completeJobBatchDelay']}), timed to its task's start."
            f" pgqueuer and procrastinate: {cfg.latency_consumers} processes with one consumer"
            f" each.")
        if "pgclaim-listen" in lat:
            lis = lat["pgclaim-listen"]
            targets.append(["pickup p50 with LISTEN (SQL API)", "<= 2 ms",
                            fmt(lis["p50"].median, 2) + " ms", verdict(lis["p50"].median <= 2)])
            targets.append(["pickup p99 with LISTEN (SQL API)", "<= 5 ms",
                            fmt(lis["p99"].median, 2) + " ms", verdict(lis["p99"].median <= 5)])
        if "worker" in lat and "graphile" in lat:
            wk, gw = lat["worker"], lat["graphile"]
            for q in ("p50", "p99"):
                ok = wk[q].median <= gw[q].median
                targets.append([f"pgclaim Worker pickup {q} <= graphile-worker (fast config)",
                                f"<= {fmt(gw[q].median, 2)} ms", fmt(wk[q].median, 2) + " ms",
                                verdict(ok)])

    if "growth" in res:
        g2 = res["growth"]
        rows = []
        base = g2[min(g2)]["cell"].rate
        for size, x in sorted(g2.items()):
            c = x["cell"]
            rows.append([f"{size:,}", fmt_sample(c.rate), f"{ratio(c.rate, base):.2f}",
                         fmt(c.claim_p50.median, 2), fmt(c.claim_p99.median, 2),
                         fmt(x["size"].median, 0), fmt(x["index"].median, 0),
                         fmt(x["dead"].median, 0)])
        out.append(
            f"### 5. Growth (drain of {cfg.growth_records:,} records, W={cfg.growth_workers}, "
            f"batch {cfg.growth_batch}, beside N finished records)\n\n" + table(
                ["finished records", "records/s median (min-max)", "ratio to empty",
                 "claim p50 ms", "claim p99 ms", "table MB", "indexes MB",
                 "n_dead_tup after"], rows))
        big = max(g2)
        r = ratio(g2[big]["cell"].rate, base)
        targets.append([f"drain rate at {big:,} finished vs empty", ">= 85 %", pct(r),
                        verdict(r >= 0.85)])

    if "seeds" in res:
        s = res["seeds"]
        rows = [
            ["claiming (W=4, batch 100)", ">= 2,000 records/s", fmt_sample(s["claim_rate"]),
             verdict(s["claim_rate"].median >= 2000)],
            ["status updates (W=1, batch 1: claim + complete)", ">= 200 /s",
             fmt_sample(s["status_updates"]), verdict(s["status_updates"].median >= 200)],
            ["operations with 10 workers (batch 1)", ">= 100 /s", fmt_sample(s["ops_10"]),
             verdict(s["ops_10"].median >= 100)],
            ["client memory growth, 1,000 records of 1 KB", "< 200 MB",
             fmt_sample(s["memory"], 1) + " MB", verdict(s["memory"].median < 200)],
        ]
        out.append("### 6. Seed figures\n\n" + table(["figure", "seed", "measured", "result"],
                                                      rows))

    scale = _scale_sections(cfg, res, command)
    if scale:
        out.append(scale)
    return "\n\n".join(out), targets


def _scale_sections(cfg: wl.Config, res: dict[str, Any], command: str) -> str:
    out: list[str] = []
    if "scale-pending" in res:
        x = res["scale-pending"]
        c = x["cell"]
        r50 = ratio(x["end_p50"], x["start_p50"])
        r99 = ratio(x["end_p99"], x["start_p99"])
        out.append(
            f"### 7a. Scale: {cfg.scale_pending:,} pending records\n\n"
            f"Command: `{command}`\n\n"
            f"The SQL API drains {cfg.scale_pending:,} pending records with W="
            f"{cfg.scale_workers} processes, batch {cfg.compare_batch}; claim latency is the"
            f" time of one claim_batch call as the client sees it, over the first and the last"
            f" 10 % of the claims that returned records.\n\n" + table(
                ["figure", "median (min-max)"],
                [["load (enqueue_batch of 10,000, then vacuum analyze), s",
                  fmt_sample(x["load_s"], 1)],
                 ["records/s to last completion", fmt_sample(c.rate)],
                 ["records/s to exit", fmt_sample(c.rate_exit)],
                 ["claim p50 ms, first 10 %", fmt_sample(x["start_p50"], 2)],
                 ["claim p50 ms, last 10 %", fmt_sample(x["end_p50"], 2)],
                 ["claim p99 ms, first 10 %", fmt_sample(x["start_p99"], 2)],
                 ["claim p99 ms, last 10 %", fmt_sample(x["end_p99"], 2)],
                 ["last / first, p50 and p99", f"{times(r50)}, {times(r99)}"],
                 ["flat: last / first <= 1.5x for p50 and p99",
                  verdict(None if isnan(r50) or isnan(r99) else max(r50, r99) <= 1.5)],
                 ["commits/record, statements/record",
                  f"{fmt(c.commits.median, 3)}, {fmt(c.statements.median, 3)}"]]))
    if "scale-queues" in res:
        x = res["scale-queues"]
        rows = []
        total = cfg.scale_queues * cfg.scale_queue_records
        layouts = (("many", f"{cfg.scale_queues:,} queues x {cfg.scale_queue_records:,} records"),
                   ("one", f"1 queue x {total:,} records"))
        for kind, title in layouts:
            k = x[kind]
            rows.append([title, fmt_sample(k["rate"]), fmt_sample(k["rate_exit"]),
                         fmt(k["claim_p50"].median, 2), fmt(k["claim_p99"].median, 2),
                         fmt(k["empty_p50"].median, 2), fmt(k["claims"].median, 0),
                         fmt(k["empty_claims"].median, 0), fmt(k["queues_touched"].median, 0),
                         fmt(k["statements"].median, 3)])
        out.append(
            f"### 7b. Scale: {cfg.scale_queues:,} queues\n\n"
            f"Command: `{command}`\n\n"
            f"W={cfg.scale_workers} SQL API processes, each claiming (batch"
            f" {cfg.compare_batch}) from every queue in turn, starting at its own offset, and"
            f" stopping after a whole pass found nothing; against the same records in one"
            f" queue, interleaved.\n\n" + table(
                ["layout", "records/s to last completion", "records/s to exit",
                 "claim p50 ms", "claim p99 ms", "empty claim p50 ms", "claims",
                 "empty claims", "queues claimed from", "statements/record"], rows))
    if "scale-procs" in res:
        d: dict[tuple[str, int], wl.DrainCell] = res["scale-procs"]
        rows = []
        for w in (cfg.scale_procs, cfg.scale_workers):
            for s in ("pgclaim", "worker"):
                c = d.get((s, w))
                if c is None:
                    continue
                rows.append([str(w), LABEL[s], fmt_sample(c.rate), fmt_sample(c.rate_exit),
                             fmt(c.claim_p50.median, 2), fmt(c.claim_p99.median, 2),
                             fmt(c.commits.median, 3), fmt(c.statements.median, 3),
                             fmt(c.rss.median, 0)])
        out.append(
            f"### 7c. Scale: {cfg.scale_procs} client processes\n\n"
            f"Command: `{command}`\n\n"
            f"Drains of {cfg.scale_procs_records:,} records, batch {cfg.compare_batch}, at"
            f" W={cfg.scale_procs} and W={cfg.scale_workers}, interleaved (on two cores, many"
            f" processes mostly measure contention).\n\n" + table(
                ["W", "system", "records/s to last completion", "records/s to exit",
                 "claim p50 ms", "claim p99 ms", "commits/record", "statements/record",
                 "client RSS MB (max)"], rows))
    return "\n\n".join(out)


def server_version(cfg: wl.Config) -> str:
    """PostgreSQL's version number."""
    with psycopg.connect(cfg.cluster, autocommit=True) as conn:
        row = conn.execute("show server_version").fetchone()
    return str(row[0]).split()[0] if row else "?"


def environment(cfg: wl.Config) -> str:
    """The settings the cluster ran with and the machine."""
    with psycopg.connect(cfg.cluster, autocommit=True) as conn:
        rows = conn.execute(
            "select name, setting, unit from pg_settings where name in ('server_version',"
            " 'fsync', 'synchronous_commit', 'full_page_writes', 'shared_buffers', 'wal_level',"
            " 'max_connections', 'shared_preload_libraries', 'work_mem') order by name"
        ).fetchall()
    settings = ", ".join(f"{n}={v}{u or ''}" for n, v, u in rows)
    v = systems.versions()
    libs = ", ".join(f"{k} {x}" for k, x in v.items())
    return (f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores, Python "
            f"{platform.python_version()}; PostgreSQL: {settings}; clients: {libs}")


def skipped(cfg: wl.Config) -> list[str]:
    """What did not run, and why."""
    out = [f"{LABEL[p]} skipped: {why}" for p, why in cfg.peers.items()
           if why and why != NOT_USED]
    if cfg.worker_skip:
        out.append(f"pgclaim Worker rows skipped: {cfg.worker_skip}")
    return out


def command_line(argv: list[str]) -> str:
    """The make command that reproduces this run."""
    if not argv:
        return "make bench"
    return f"make bench BENCH_ARGS={shlex.quote(' '.join(argv))}"


def method_text(cfg: wl.Config) -> str:
    """How systems are configured and timed (the page's "What is measured")."""
    pc = cfg.peer_cfg
    return f"""## What is measured

Every system drains the same records with the same client machine, in the same run, with the
systems interleaved (their order rotates each round). Each runs the way its own documentation
recommends for throughput; the table under each result says how, with the version.

**One window, two figures.** The client processes of a run are spawned first and import
their libraries; one start signal releases them, and they connect, drain and exit. Both
figures start at that signal:

- *to last completion*: until the database holds no unfinished record. The clients of the
  SQL API and of the ceiling complete synchronously and report when their last completing
  statement returned. For every other system (the pgclaim Worker and the peers, which
  complete from a background loop or in batches) a separate connection asks the database
  every {pc.poll_interval * 1000:.0f} ms whether a record is unfinished, each question answered
  from an index; the time the first answer "none" was asked is the last completion, so those
  systems carry up to {pc.poll_interval * 1000:.0f} ms more than they took. (The ceiling is polled too,
  on its pending-records index, only so that every system carries the same load.)
- *to exit*: until the last client process exited, as its parent sees it: this adds each
  system's shut-down (the Worker's `run(until_empty=True)` stops its heartbeat and listener
  threads and deregisters; a graphile-worker `runOnce` flushes its batches and releases its
  pool).

Targets are judged on the time to the last completion; both ratios are printed.

1. **Enqueue**: one record per call (`pgclaim.enqueue`) against a bare single-row INSERT
   into a table of the same shape and indexes (`like pgclaim.records including all`), and
   `enqueue_batch` of 1,000 against the faster of two bare 1,000-row INSERTs (`values (…),
   (…), …` and `select … from unnest(…)`). Peers use their own producer (procrastinate
   `defer_async`/`batch_defer_async`, pgqueuer `Queries.enqueue` on asyncpg, graphile-worker
   `add_job`/`add_jobs`).
2. **Side by side**: {cfg.compare_records:,} pre-enqueued no-op records per system at each W in
   {', '.join(map(str, cfg.compare_workers))}, batch {cfg.compare_batch}. Queue tables are vacuumed and analyzed after
   loading.
   - *raw-SQL ceiling*: W processes, one connection each, the bare claim (`with c as (select
     id … for update skip locked) update … returning`) and `update … set status = 'done'
     where id = any(…)` on a two-column table with a partial index.
   - *pgclaim SQL API*: W processes, one connection each, `claim_batch` then `complete` with
     the lease tokens.
   - *pgclaim Worker*: W processes, one `pgclaim.Worker` each with its defaults
     (concurrency 4, LISTEN on) and `batch_size` {cfg.compare_batch}, `run(until_empty=True)`,
     a synchronous no-op handler.
   - *pgqueuer*: W `QueueManager`s, each on its own asyncpg connection (`AsyncpgDriver`; its
     performance guide recommends the asyncpg driver for throughput and a dedicated
     connection, not a pool, for each `QueueManager`), on uvloop as `pgq run` does,
     `run(batch_size={cfg.compare_batch}, mode=drain)` (its guide: raise `batch_size` for
     short jobs), `max_concurrent_tasks` unset, the `pgq autovac` table settings applied,
     durability `durable` (the same durability as every other system here). The W managers
     are spread over one process per core (its own benchmark tool runs several managers in
     one process; here one process per core drained faster than W processes or one).
   - *graphile-worker*: one node process, `runOnce` with `concurrentJobs` W,
     `maxPoolSize` max(10, W + 2) (its configuration reference: 10 or concurrency + 2,
     whichever is larger), `localQueue.size` max(W + 1, 500) (its performance page: W + 1
     as a starting point, 500 in its own performance test; 500 drained faster here),
     `completeJobBatchDelay` and `failJobBatchDelay` 0 (its performance test; the page
     advises everyone to enable them "even if they are set to 0"), all given in the preset
     (graphile-worker reads its batching options from the preset only). `pollInterval`
     (2 s) and `useNodeTime` (false) stay at their defaults: a drain never waits for a poll,
     and the reference calls `useNodeTime` moot when the clocks agree.
   - *procrastinate*: `run_worker_async(concurrency=…, wait=False)` (its concurrency how-to)
     with W sub-workers in all, spread over one process per core like pgqueuer, an async
     no-op task (its reference: do not use concurrency with synchronous blocking tasks), a
     psycopg pool of the concurrency + 2 (its discussion of pool size: the concurrency plus
     one, and the LISTEN connection comes from the pool), `listen_notify` and
     `fetch_job_polling_interval` at their defaults (a drain with `wait=False` never waits
     for a poll).

   Commits and statements per record come from `pg_stat_database` (xact_commit) and
   `pg_stat_statements` (top-level calls) before and after each run, minus the polls, so
   they include each client's start-up and shut-down. Client RSS is the largest of the
   client processes at their end (Python processes are forked from the suite, so they count
   the pages they share with it; node reports `process.memoryUsage().rss`).
3. **pgclaim drain grid**: the SQL API, the Worker and the ceiling over W and batch sizes,
   timed the same way; a run drains {cfg.drain_per_batch:,} × batch records (at most
   {cfg.drain_records:,}).
4. **Pickup latency**: idle consumers; one producer enqueues records one at a time,
   {cfg.latency_gap * 1000:.0f} ms apart, each carrying its send time; the latency is the time
   from just before the enqueue call to the consumer holding the record (so it includes the
   enqueue call and its commit, shown in the last column). The pgclaim Worker is timed to
   its handler's start, graphile-worker (its fast configuration, one process with
   concurrency {cfg.latency_consumers}) to its task's start. The SQL API consumers LISTEN on
   `pgclaim_<queue>` and call `claim_batch` on each notification; the polling variant calls
   it every {cfg.poll_interval * 1000:.0f} ms instead.
5. **Growth**: the drain at W={cfg.growth_workers}, batch {cfg.growth_batch}, beside
   finished records inserted straight into `pgclaim.records`; claim latency is the time of
   one `claim_batch` call as the client sees it.
6. **Seed figures** with pass/fail.
7. **Scale** (only with `--only scale-pending,scale-queues,scale-procs`; each section names
   the command that produced it): a drain of {cfg.scale_pending:,} pending records with
   claim latency over its first and last 10 % of claims; {cfg.scale_queues:,} queues with
   claims spread over all of them, against the same records in one queue;
   {cfg.scale_procs} client processes against {cfg.scale_workers}.
"""


def how_to_run_text() -> str:
    """The page's "How to run"."""
    return """## How to run

    make bench                                   # full suite, --repeat 3
    make bench BENCH_ARGS=--quick                # smoke run, a few minutes
    make bench BENCH_ARGS='--only compare,latency'
    make bench BENCH_ARGS='--only scale-pending' # also scale-queues, scale-procs
    make bench BENCH_ARGS=--write-docs           # rewrite this page

The suite creates its own databases (`bench_*`) on the throwaway cluster and drops them.
It installs the peers it compares with (`pip install -e '.[bench]'`: procrastinate,
pgqueuer with asyncpg; `npm ci` in `bench/node` for graphile-worker when `node` is present).
A `--quick` run with `--write-docs` writes `bench/out/performance-quick.md` instead of this
page: smoke figures are never headline figures. The server settings, the machine and the
version of every client are printed with the results.
"""


def write_docs(text: str, env: str, duration: float, cfg: wl.Config, argv: list[str]) -> Path:
    """Writes docs/performance.md from this run (a quick run: bench/out/performance-quick.md)."""
    quick = cfg.quick
    path = (ROOT / "bench" / "out" / "performance-quick.md") if quick else (
        ROOT / "docs" / "performance.md")
    banner = ("> **Smoke run (`--quick`): small sizes, one round. These figures are not the"
              " headline figures; those are in docs/performance.md.**\n\n") if quick else ""
    intro = f"""# pgclaim performance

{banner}Figures from one run of `{command_line(argv)}`, which wrote this
page. Every figure is the median of {cfg.repeat} runs with the
smallest and largest in brackets; every ratio compares medians measured in the same run,
with the systems interleaved. The run took {duration / 60:.0f} minutes.

**Read them as relative figures.** The machine has {env.split(',')[1].strip()} shared by the
server, the benchmark clients and other work running at the same time, so absolute numbers
are noisy and more than a handful of client processes mostly measures contention. The
cluster ran with the default durability (fsync on, synchronous_commit on,
full_page_writes on; an fsync costs about 85 µs on this kind of machine: a disk with millisecond
fsync lowers everything that commits per record).

Environment: {env}.

{how_to_run_text()}
{method_text(cfg)}
"""
    notes = "\n".join(f"- {s}" for s in skipped(cfg))
    body = intro + "## Results\n\n" + text + ("\n\nNot measured in this run:\n\n" + notes
                                               if notes else "") + "\n"
    if quick:
        path.parent.mkdir(exist_ok=True)
        path.write_text(body)
    else:
        # Everything from the marker on is written by hand (analysis, profiles) and kept.
        kept = DOCS_MARKER + "\n"
        if path.exists() and DOCS_MARKER in path.read_text():
            kept = DOCS_MARKER + path.read_text().split(DOCS_MARKER, 1)[1]
        path.write_text(body + "\n" + kept)
    log(f"wrote {path.relative_to(ROOT)}")
    return path


def main(argv: list[str]) -> int:
    """Runs the suite."""
    args = parse_args(argv)
    started = time.monotonic()
    only = args.only.split(",") if args.only else list(WORKLOADS)
    bad = [w for w in only if w not in WORKLOADS + SCALE]
    if bad:
        print(f"unknown workload(s): {', '.join(bad)}", file=sys.stderr)
        return 2
    needs_peers = any(w in ("enqueue", "compare", "latency") for w in only)
    if not args.no_peers and needs_peers:
        systems.install_deps()
    cluster = cluster_url()
    cfg = make_config(args, cluster)
    cfg.peers = (systems.peer_status() if not args.no_peers and needs_peers else
                 {p: "--no-peers" if args.no_peers else NOT_USED
                  for p in ("procrastinate", "pgqueuer", "graphile")})
    cfg.worker_skip = systems.worker_status()
    for line in skipped(cfg):
        print(line, flush=True)
    print("versions: " + ", ".join(f"{k} {x}" for k, x in systems.versions().items()),
          flush=True)

    log("creating template databases")
    built = ["pgclaim"] + [p for p, why in cfg.peers.items() if why is None]
    for s in built:
        systems.make_template(cluster, s)
    results: dict[str, Any] = {}
    try:
        for name in only:
            log(f"workload {name}")
            results[name] = getattr(wl, name.replace("-", "_"))(cfg)
    finally:
        for s in built:
            admin(cluster, f'drop database if exists "{systems.template_name(s)}" with (force)')
    duration = time.monotonic() - started
    command = command_line(argv)
    text, targets = report(cfg, results, command)
    env = environment(cfg)
    if targets:
        text += "\n\n### Targets\n\n" + table(["target", "goal", "measured", "result"], targets)
    print()
    if cfg.quick:
        print("SMOKE RUN (--quick): small sizes, one round; not headline figures.\n")
    print(text)
    print(f"\n{env}\nrepeat {cfg.repeat}; total time {duration / 60:.1f} min; command: {command}")
    out_dir = ROOT / "bench" / "out"
    out_dir.mkdir(exist_ok=True)
    (out_dir / "last.md").write_text(text + "\n")
    (out_dir / "last.json").write_text(json.dumps(_jsonable(results), indent=1))
    if args.write_docs:
        write_docs(text, env, duration, cfg, argv)
    return 0


def _jsonable(x: Any) -> Any:
    if isinstance(x, Sample):
        return x.values
    if isinstance(x, dict):
        return {(",".join(map(str, k)) if isinstance(k, tuple) else str(k)): _jsonable(v)
                for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if hasattr(x, "__dataclass_fields__"):
        return {k: _jsonable(getattr(x, k)) for k in x.__dataclass_fields__}
    return x


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
