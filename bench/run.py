"""pgclaim benchmark suite.

    .venv/bin/python bench/run.py [--quick] [--repeat N] [--only enqueue,drain,...]
                                  [--growth 0,1000000,5000000] [--write-docs]

Starts or reuses the throwaway cluster (PGCLAIM_BENCH_URL, else scripts/cluster.sh start),
creates its own databases (bench_*), runs every workload --repeat times with the systems
interleaved, and prints medians (min-max) and the ratios of one run. --write-docs also writes
the tables into docs/performance.md.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from math import isnan
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import psycopg
import systems
import workloads as wl
from common import ROOT, Sample, admin, cluster_url, fmt, fmt_sample, log, ratio

DOCS_MARKER = "<!-- bench/run.py --write-docs replaces everything above this line -->"
WORKLOADS = ("enqueue", "drain", "latency", "growth", "seeds")
LABEL = {
    "pgclaim": "pgclaim SQL API",
    "raw": "raw-SQL ceiling",
    "worker": "pgclaim Python Worker",
    "bare": "bare INSERT",
    "bare_unnest": "bare INSERT ... SELECT unnest",
    "procrastinate": "procrastinate",
    "pgqueuer": "pgqueuer",
    "graphile": "graphile-worker",
    "pgclaim-listen": "pgclaim LISTEN/NOTIFY",
    "pgclaim-poll": "pgclaim polling",
}


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The command line."""
    p = argparse.ArgumentParser(description="pgclaim benchmark suite")
    p.add_argument("--quick", action="store_true", help="small sizes: a smoke run (~2 min)")
    p.add_argument("--repeat", type=int, help="runs of each measurement (default 3, quick 1)")
    p.add_argument("--only", help="comma-separated workloads: " + ",".join(WORKLOADS))
    p.add_argument("--growth", help="finished-record counts, e.g. 0,1000000,5000000")
    p.add_argument("--drain-records", type=int, help="records per drain run")
    p.add_argument("--workers", help="drain worker counts, e.g. 1,4,16")
    p.add_argument("--batches", help="drain batch sizes, e.g. 1,10,100,1000")
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
            cluster=cluster, repeat=1, enqueue_single=500, enqueue_batches=10,
            drain_records=2_000, drain_per_batch=1_000, peer_records=500, workers=(4,),
            batches=(1, 100), latency_records=100, growth=(0, 100_000), growth_records=5_000,
            seed_records=1_000,
        )
    if args.repeat:
        cfg.repeat = args.repeat
    if args.growth:
        cfg.growth = ints(args.growth)
    if args.drain_records:
        cfg.drain_records = args.drain_records
    if args.workers:
        cfg.workers = ints(args.workers)
    if args.batches:
        cfg.batches = ints(args.batches)
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


def report(cfg: wl.Config, res: dict[str, Any]) -> tuple[str, list[list[str]]]:
    """The Markdown sections and the targets table rows."""
    out: list[str] = []
    targets: list[list[str]] = []

    if "enqueue" in res:
        e = res["enqueue"]
        rows = []
        for kind, title in (("single", "one record per call"),
                            ("batch", f"batches of {cfg.batch_of:,}")):
            base = max((e[kind][b] for b in ("bare", "bare_unnest") if b in e[kind]),
                       key=lambda x: x.median)
            for s, sample in e[kind].items():
                rows.append([title, LABEL[s], fmt_sample(sample), f"{ratio(sample, base):.2f}"])
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

    if "drain" in res:
        d: dict[tuple[str, int, int], wl.DrainCell] = res["drain"]
        rows = []
        for w in cfg.workers:
            for b in cfg.batches:
                raw = d.get(("raw", w, b))
                for s in ("pgclaim", "raw", "worker", "pgqueuer"):
                    c = d.get((s, w, b))
                    if c is None:
                        continue
                    rr = "" if raw is None or s == "raw" else f"{ratio(c.rate, raw.rate):.2f}"
                    rows.append([str(w), f"{b:,}", LABEL[s], f"{c.records:,}", fmt_sample(c.rate), rr,
                                 fmt(c.commits.median, 2), fmt(c.statements.median, 2),
                                 fmt(c.rss.median, 0)])
            for s in systems_batchless(d, w):
                c = d[(s, w, 0)]
                rows.append([str(w), "-", LABEL[s], f"{c.records:,}", fmt_sample(c.rate), "",
                             fmt(c.commits.median, 2), fmt(c.statements.median, 2),
                             fmt(c.rss.median, 0)])
        out.append(
            "### 2. Drain (pre-enqueued no-op records, W processes, one connection each, "
            "autocommit)\n\n" + table(
                ["W", "batch", "system", "records", "records/s median (min-max)", "ratio to ceiling",
                 "commits/record", "statements/record", "client RSS MB (max)"], rows))
        cells = [(w, b) for w in cfg.workers for b in cfg.batches if b >= 100 and w == 4]
        for w, b in cells:
            if ("pgclaim", w, b) in d and ("raw", w, b) in d:
                r = ratio(d[("pgclaim", w, b)].rate, d[("raw", w, b)].rate)
                targets.append([f"SQL API drain / raw ceiling, W={w}, batch={b:,}", ">= 85 %",
                                pct(r), verdict(r >= 0.85)])
        if 4 in cfg.workers:
            wk = [d[k].rate for k in d if k[0] == "worker" and k[1] == 4 and k[2] >= 100]
            best_worker = max(wk, key=lambda s: s.median) if wk else Sample()
            py_peers = [d[k].rate for k in d if k[0] in ("procrastinate", "pgqueuer")
                        and k[1] == 4]
            best_py = max(py_peers, key=lambda s: s.median) if py_peers else Sample()
            gw = [d[k].rate for k in d if k[0] == "graphile" and k[1] == 4]
            r = ratio(best_worker, best_py)
            targets.append([("Python Worker (batch >= 100) / faster of procrastinate, pgqueuer,"
                             " W=4"), ">= 5x", fmt(r, 1) + "x" if not isnan(r) else "-",
                            verdict(r >= 5 if not isnan(r) else None)])
            r = ratio(best_worker, gw[0]) if gw else float("nan")
            targets.append(["Python Worker (batch >= 100) / graphile-worker, W=4", ">= 2x",
                            fmt(r, 1) + "x" if not isnan(r) else "-",
                            verdict(r >= 2 if not isnan(r) else None)])
        w16 = [d[k].rss for k in d if k[0] == "worker" and k[1] == max(cfg.workers)]
        rss = max((s.median for s in w16), default=float("nan"))
        targets.append([f"Python Worker RSS at W={max(cfg.workers)}", "< 80 MB",
                        fmt(rss, 0) + " MB" if not isnan(rss) else "-",
                        verdict(rss < 80 if not isnan(rss) else None)])

    if "latency" in res:
        lat = res["latency"]
        rows = [[LABEL[s], fmt_sample(v["p50"], 2), fmt_sample(v["p99"], 2),
                 fmt_sample(v["max"], 1), fmt(v["call"].median, 2)] for s, v in lat.items()]
        out.append(
            f"### 3. Pickup latency ({cfg.latency_records} records enqueued one at a time "
            f"{cfg.latency_gap * 1000:.0f} ms apart, {cfg.latency_consumers} idle consumers; "
            f"polling every {cfg.poll_interval * 1000:.0f} ms)\n\n" + table(
                ["system", "p50 ms", "p99 ms", "max ms", "enqueue call p50 ms"], rows))
        lis = lat["pgclaim-listen"]
        targets.append(["pickup p50 with LISTEN", "<= 2 ms", fmt(lis["p50"].median, 2) + " ms",
                        verdict(lis["p50"].median <= 2)])
        targets.append(["pickup p99 with LISTEN", "<= 5 ms", fmt(lis["p99"].median, 2) + " ms",
                        verdict(lis["p99"].median <= 5)])

    if "growth" in res:
        g = res["growth"]
        rows = []
        base = g[min(g)]["cell"].rate
        for size, v in sorted(g.items()):
            c = v["cell"]
            rows.append([f"{size:,}", fmt_sample(c.rate), f"{ratio(c.rate, base):.2f}",
                         fmt(c.claim_p50.median, 2), fmt(c.claim_p99.median, 2),
                         fmt(v["size"].median, 0), fmt(v["index"].median, 0),
                         fmt(v["dead"].median, 0)])
        out.append(
            f"### 4. Growth (drain of {cfg.growth_records:,} records, W={cfg.growth_workers}, "
            f"batch {cfg.growth_batch}, beside N finished records)\n\n" + table(
                ["finished records", "records/s median (min-max)", "ratio to empty",
                 "claim p50 ms", "claim p99 ms", "table MB", "indexes MB",
                 "n_dead_tup after"], rows))
        big = max(g)
        r = ratio(g[big]["cell"].rate, base)
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
        out.append("### 5. Seed figures\n\n" + table(["figure", "seed", "measured", "result"],
                                                      rows))
    return "\n\n".join(out), targets


def systems_batchless(d: dict[tuple[str, int, int], Any], w: int) -> list[str]:
    """The peers without a batch notion measured at W=w."""
    return [s for s in wl.BATCHLESS if (s, w, 0) in d]


def environment(cfg: wl.Config) -> str:
    """The settings the cluster ran with and the machine."""
    with psycopg.connect(cfg.cluster, autocommit=True) as conn:
        rows = conn.execute(
            "select name, setting, unit from pg_settings where name in ('server_version',"
            " 'fsync', 'synchronous_commit', 'full_page_writes', 'shared_buffers', 'wal_level',"
            " 'max_connections', 'shared_preload_libraries', 'work_mem') order by name"
        ).fetchall()
    settings = ", ".join(f"{n}={v}{u or ''}" for n, v, u in rows)
    import os

    return (f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores, Python "
            f"{platform.python_version()}; PostgreSQL: {settings}")


def skipped(cfg: wl.Config) -> list[str]:
    """What did not run, and why."""
    out = [f"{LABEL[p]} skipped: {why}" for p, why in cfg.peers.items() if why]
    if cfg.worker_skip:
        out.append(f"Python Worker rows skipped: {cfg.worker_skip}")
    return out


def write_docs(text: str, env: str, duration: float, cfg: wl.Config, argv: list[str]) -> None:
    """Writes docs/performance.md from this run."""
    path = ROOT / "docs" / "performance.md"
    intro = f"""# pgclaim performance

Figures from one run of `make bench` (`bench/run.py {' '.join(argv)}`), which wrote this
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

## How to run

    make bench                                   # full suite, --repeat 3
    make bench BENCH_ARGS=--quick                # smoke run, about two minutes
    make bench BENCH_ARGS='--only drain,growth --growth 0,1000000'
    make bench BENCH_ARGS=--write-docs           # rewrite this page

The suite creates its own databases (`bench_*`) on the throwaway cluster and drops them.
It installs the peers it compares with (`pip install -e '.[bench]'`: procrastinate and
pgqueuer; `npm install` in `bench/node` for graphile-worker when `node` is present).

## What is measured

1. **Enqueue**: one record per call (`pgclaim.enqueue`) against a bare single-row INSERT
   into a table of the same shape and indexes (`like pgclaim.records including all`), and
   `enqueue_batch` of 1,000 against the faster of two bare 1,000-row INSERTs (`values (…),
   (…), …` and `select … from unnest(…)`). Peers use their own
   producer (procrastinate `defer_async`/`batch_defer_async`, pgqueuer `Queries.enqueue`,
   graphile-worker `add_job`/`add_jobs`).
2. **Drain**: pre-enqueued no-op records claimed and completed by W processes, each with one
   autocommit connection: `claim_batch` then `complete` with the lease tokens. The ceiling
   runs the bare claim (`with c as (select id … for update skip locked) update … returning`)
   and `update … set status = 'done' where id = any(…)` on a bare table with a partial index.
   Queue tables are vacuumed and analyzed after loading. A run drains 2,000 × batch records
   (at most 20,000). The Python `Worker` runs with its defaults (concurrency 4) and
   `batch_size` set to the batch, `run(until_empty=True)` in each process; it is timed to its
   last completion (`max(finished_at)`), because `run` returns about a second after the
   queue is empty. Peers run a no-op task with their defaults in W processes: pgqueuer
   (`QueueManager.run(batch_size=batch, mode=drain)`, psycopg driver, its `autovac` table
   settings applied, 2,000 × batch/10 jobs, at least 2,000), procrastinate
   (`run_worker(concurrency=1, wait=False)`) and graphile-worker (`runOnce`, concurrency 1);
   the last two fetch one job at a time (no batch notion), so they have one row per W and
   drain 2,000 jobs. Commits and statements per record come from `pg_stat_database`
   (xact_commit) and `pg_stat_statements` (top-level calls) before and after each run, so
   they include each client's start-up and shutdown. Client RSS is the largest VmRSS of the
   W processes at their end (Python processes are forked from the suite, so they count
   the pages they share with it).
3. **Pickup latency**: idle consumers; one producer enqueues records one at a time, 10 ms
   apart, each carrying its send time; the latency is the time from just before the
   enqueue call to the consumer holding the record (so it includes the enqueue call and
   its commit, shown in the last column). The pgclaim consumers LISTEN on
   `pgclaim_<queue>` and call `claim_batch` on each notification (every idle consumer
   wakes); the polling variant calls `claim_batch` every 50 ms instead.
4. **Growth**: the drain at W={cfg.growth_workers}, batch {cfg.growth_batch}, beside
   finished records inserted straight into `pgclaim.records`; claim latency is the time of
   one `claim_batch` call as the client sees it.
5. **Seed figures** with pass/fail.

"""
    notes = "\n".join(f"- {s}" for s in skipped(cfg))
    body = intro + "## Results\n\n" + text + ("\n\nNot measured in this run:\n\n" + notes
                                               if notes else "") + "\n"
    # Everything from the marker on is written by hand (analysis, profiles) and kept.
    kept = DOCS_MARKER + "\n"
    if path.exists() and DOCS_MARKER in path.read_text():
        kept = path.read_text().split(DOCS_MARKER, 1)[1]
        kept = DOCS_MARKER + kept
    path.write_text(body + "\n" + kept)
    log(f"wrote {path.relative_to(ROOT)}")


def main(argv: list[str]) -> int:
    """Runs the suite."""
    args = parse_args(argv)
    started = time.monotonic()
    only = args.only.split(",") if args.only else list(WORKLOADS)
    bad = [w for w in only if w not in WORKLOADS]
    if bad:
        print(f"unknown workload(s): {', '.join(bad)}", file=sys.stderr)
        return 2
    if not args.no_peers:
        systems.install_deps()
    cluster = cluster_url()
    cfg = make_config(args, cluster)
    cfg.peers = (systems.peer_status() if not args.no_peers else
                 {p: "--no-peers" for p in ("procrastinate", "pgqueuer", "graphile")})
    cfg.worker_skip = systems.worker_status()
    for line in skipped(cfg):
        print(line, flush=True)

    log("creating template databases")
    built = ["pgclaim"] + [p for p, why in cfg.peers.items() if why is None]
    for s in built:
        systems.make_template(cluster, s)
    results: dict[str, Any] = {}
    try:
        for name in only:
            log(f"workload {name}")
            results[name] = getattr(wl, name)(cfg)
    finally:
        for s in built:
            admin(cluster, f'drop database if exists "{systems.template_name(s)}" with (force)')
    duration = time.monotonic() - started
    text, targets = report(cfg, results)
    env = environment(cfg)
    if targets:
        text += "\n\n### Targets\n\n" + table(["target", "goal", "measured", "result"], targets)
    print()
    print(text)
    print(f"\n{env}\nrepeat {cfg.repeat}; total time {duration / 60:.1f} min")
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
    if hasattr(x, "__dataclass_fields__"):
        return {k: _jsonable(getattr(x, k)) for k in x.__dataclass_fields__}
    return x


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
