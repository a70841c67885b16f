"""The workloads: enqueue, drain, pickup latency, growth and the seed figures."""
from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from math import isnan
from typing import Any

import psycopg
import systems
from common import (
    Counters,
    Sample,
    connect,
    counters,
    counters_settled,
    drop_db,
    log,
    percentile,
    rss_mb,
)
from procs import CTX, run_group
from psycopg.types.json import Jsonb


@dataclass
class Config:
    """Sizes and repetitions of one run of the suite."""

    cluster: str
    repeat: int = 3
    enqueue_single: int = 5_000
    enqueue_batches: int = 100
    batch_of: int = 1_000
    drain_records: int = 20_000
    drain_per_batch: int = 2_000
    peer_records: int = 2_000
    workers: tuple[int, ...] = (1, 4, 16)
    batches: tuple[int, ...] = (1, 10, 100, 1_000)
    latency_records: int = 300
    latency_gap: float = 0.010
    latency_consumers: int = 4
    poll_interval: float = 0.050
    growth: tuple[int, ...] = (0, 1_000_000, 5_000_000)
    growth_records: int = 100_000
    growth_workers: int = 4
    growth_batch: int = 100
    seed_records: int = 5_000
    peers: dict[str, str | None] = field(default_factory=dict)
    worker_skip: str | None = None


@dataclass
class DrainCell:
    """Measurements of one system at one (W, batch)."""

    rate: Sample = field(default_factory=Sample)
    commits: Sample = field(default_factory=Sample)
    statements: Sample = field(default_factory=Sample)
    rss: Sample = field(default_factory=Sample)
    claim_p50: Sample = field(default_factory=Sample)
    claim_p99: Sample = field(default_factory=Sample)
    records: int = 0


def _tag() -> str:
    return f"{int(time.time() * 1000) % 10_000_000}"


# ---------------------------------------------------------------------------- 1. enqueue


def _enqueue_once(cfg: Config, system: str, kind: str) -> float:
    """Records per second of one enqueue run (kind: single or batch)."""
    base = "pgclaim" if system in ("pgclaim", "bare", "bare_unnest") else system
    url = systems.fresh_db(cfg.cluster, base, _tag())
    n = cfg.enqueue_single if kind == "single" else cfg.enqueue_batches * cfg.batch_of
    try:
        if system in ("procrastinate", "pgqueuer"):
            return asyncio.run(_enqueue_peer(url, system, kind, cfg))
        with connect(url) as conn:
            payload = Jsonb({})
            if kind == "single":
                sql = {
                    "pgclaim": "select pgclaim.enqueue(%s, %s)",
                    "bare": "insert into bare.records (queue, run_at, payload, max_attempts,"
                            " enqueued_at) values (%s, now(), %s, 5, now())",
                    "graphile": "select graphile_worker.add_job(%s, %s::json)",
                }[system]
                args = ("noop" if system == "graphile" else systems.QUEUE, payload)
                t = time.perf_counter()
                for _ in range(n):
                    conn.execute(sql, args)  # type: ignore[arg-type]
                return n / (time.perf_counter() - t)
            payloads = [payload] * cfg.batch_of
            if system == "bare":
                values = ", ".join(["(%s, now(), %s, 5, now())"] * cfg.batch_of)
                sql = ("insert into bare.records (queue, run_at, payload, max_attempts,"
                       f" enqueued_at) values {values}")
                params: tuple[Any, ...] = tuple(
                    x for _ in range(cfg.batch_of) for x in (systems.QUEUE, payload))
            elif system == "bare_unnest":
                sql = ("insert into bare.records (queue, run_at, payload, max_attempts,"
                       " enqueued_at) select %s, now(), p, 5, now() from unnest(%s::jsonb[]) as p")
                params = (systems.QUEUE, payloads)
            elif system == "pgclaim":
                sql = "select count(*) from pgclaim.enqueue_batch(%s, %s)"
                params = (systems.QUEUE, payloads)
            else:
                sql = ("select count(*) from graphile_worker.add_jobs(array(select row('noop',"
                       " p::json, null, null, null, null, null, null)::graphile_worker.job_spec"
                       " from unnest(%s::text[]) as p))")
                params = (["{}"] * cfg.batch_of,)
            t = time.perf_counter()
            for _ in range(cfg.enqueue_batches):
                conn.execute(sql, params)  # type: ignore[arg-type]
            return n / (time.perf_counter() - t)
    finally:
        drop_db(cfg.cluster, url.rsplit("/", 1)[1].split("?")[0])


async def _enqueue_peer(url: str, system: str, kind: str, cfg: Config) -> float:
    n = cfg.enqueue_single if kind == "single" else cfg.enqueue_batches * cfg.batch_of
    if system == "procrastinate":
        app = systems.procrastinate_app(url)
        task = app.tasks["noop"]
        async with app.open_async():
            t = time.perf_counter()
            if kind == "single":
                for _ in range(n):
                    await task.defer_async()
            else:
                for _ in range(cfg.enqueue_batches):
                    await task.batch_defer_async(*[{} for _ in range(cfg.batch_of)])
            return n / (time.perf_counter() - t)
    from pgqueuer import PsycopgDriver, Queries

    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as aconn:
        q = Queries(PsycopgDriver(aconn))
        t = time.perf_counter()
        if kind == "single":
            for _ in range(n):
                await q.enqueue("noop", None)
        else:
            for _ in range(cfg.enqueue_batches):
                await q.enqueue(["noop"] * cfg.batch_of, [None] * cfg.batch_of,
                                [0] * cfg.batch_of)
        return n / (time.perf_counter() - t)


def enqueue(cfg: Config) -> dict[str, dict[str, Sample]]:
    """Workload 1: records/s one per call and in batches, pgclaim vs bare INSERT vs peers."""
    names = ["pgclaim", "bare"] + [p for p in ("procrastinate", "pgqueuer", "graphile")
                                    if cfg.peers.get(p) is None]
    out = {"single": {s: Sample() for s in names},
           "batch": {s: Sample() for s in [*names[:2], "bare_unnest", *names[2:]]}}
    for r in range(cfg.repeat):
        for kind in ("single", "batch"):
            for s in out[kind]:
                v = _enqueue_once(cfg, s, kind)
                out[kind][s].add(v)
                log(f"enqueue {kind} {s} run {r + 1}: {v:,.0f}/s")
    return out


# ---------------------------------------------------------------------------- 2. drain


def drain_once(cfg: Config, system: str, w: int, batch: int, n: int,
               timings: bool = False, url: str | None = None) -> dict[str, Any]:
    """Drains n pre-loaded records with w processes; rate, counters per record, RSS."""
    own = url is None
    if url is None:
        url = systems.fresh_db(cfg.cluster, "pgclaim" if system in ("raw", "worker")
                               else system, _tag())
    try:
        systems.load(url, system, n)
        before = counters(url)
        rss: list[float]
        lat: list[float] = []
        if system == "graphile":
            elapsed, rss = systems.drain_graphile(url, w)
        else:
            setup, extra = _drain_setup(system, n)
            outcome = run_group(setup, [(url, batch, f"bench-{system}-{i}", *extra(timings))
                                        for i in range(w)])
            elapsed = outcome.elapsed
            if system == "worker":
                # To its last completion: run(until_empty=True) returns about a second later
                # (its listener's wait), which would otherwise dominate short runs.
                with connect(url) as conn:
                    row = conn.execute("select extract(epoch from max(finished_at))::float8"
                                       " from pgclaim.records").fetchone()
                assert row is not None
                elapsed = row[0] - outcome.started_at
            rss = [r["rss_mb"] for r in outcome.results]
            for res in outcome.results:
                lat.extend(res.get("claim_latency", []))
        after = counters_settled(url, before)
        left = systems.remaining(url, system)
        if left:
            raise RuntimeError(f"{system} drain left {left} records unfinished")
        return {
            "rate": n / elapsed,
            "commits": (after.commits - before.commits) / n,
            "statements": (after.statements - before.statements) / n,
            "rss": max(rss) if rss else float("nan"),
            "claim_p50": percentile(lat, 0.5) * 1000 if lat else float("nan"),
            "claim_p99": percentile(lat, 0.99) * 1000 if lat else float("nan"),
        }
    finally:
        if own:
            drop_db(cfg.cluster, url.rsplit("/", 1)[1].split("?")[0])


def _drain_setup(system: str, n: int) -> tuple[Callable[..., Any], Callable[[bool], tuple[Any, ...]]]:
    setup = {
        "worker": systems.drain_worker,
        "pgclaim": systems.drain_sql_api,
        "raw": systems.drain_raw,
        "procrastinate": systems.drain_procrastinate,
        "pgqueuer": systems.drain_pgqueuer,
    }[system]
    return setup, lambda t: (t,)


def _add(cell: DrainCell, res: dict[str, Any]) -> None:
    for k in ("rate", "commits", "statements", "rss", "claim_p50", "claim_p99"):
        v = res[k]
        if not isnan(v):
            getattr(cell, k).add(v)


BATCHLESS = ("procrastinate", "graphile")
PEERS = ("procrastinate", "pgqueuer", "graphile")


def drain_size(cfg: Config, system: str, batch: int) -> int:
    """Records per drain run: fewer at batch 1 and for the (slower) peers, to bound the time."""
    n = min(cfg.drain_records, cfg.drain_per_batch * batch)
    if system in BATCHLESS:
        n = min(n, cfg.peer_records)
    elif system in PEERS:
        # Enough batches to reach a steady state at the large batch sizes.
        n = min(n, cfg.peer_records * max(1, batch // 10))
    return n


def drain(cfg: Config) -> dict[tuple[str, int, int], DrainCell]:
    """Workload 2: the drain grid; systems interleaved inside each cell and repetition."""
    names = ["pgclaim", "raw"]
    if cfg.worker_skip is None:
        names.append("worker")
    names += [p for p in ("pgqueuer", "procrastinate", "graphile") if cfg.peers.get(p) is None]
    out: dict[tuple[str, int, int], DrainCell] = {}
    for r in range(cfg.repeat):
        for w in cfg.workers:
            for b in cfg.batches:
                for s in names:
                    if s in BATCHLESS and b != cfg.batches[0]:
                        continue  # no batch notion: one run per W
                    key = (s, w, 0 if s in BATCHLESS else b)
                    n = drain_size(cfg, s, b)
                    res = drain_once(cfg, s, w, b, n)
                    cell = out.setdefault(key, DrainCell(records=n))
                    _add(cell, res)
                    log(f"drain {s} W={w} batch={b} run {r + 1}: {res['rate']:,.0f}/s, "
                        f"{res['commits']:.2f} commits/rec, {res['statements']:.2f} stmts/rec")
    return out


# ---------------------------------------------------------------------------- 3. latency


def _latency_once(cfg: Config, system: str) -> tuple[list[float], list[float]]:
    base = "pgclaim" if system.startswith("pgclaim") else system
    url = systems.fresh_db(cfg.cluster, base, _tag())
    m = cfg.latency_records
    try:
        if system == "graphile":
            return _latency_graphile(cfg, url)
        poll = cfg.poll_interval if system == "pgclaim-poll" else None
        setup = {
            "pgclaim-listen": systems.listen_pgclaim,
            "pgclaim-poll": systems.listen_pgclaim,
            "procrastinate": systems.listen_procrastinate,
            "pgqueuer": systems.listen_pgqueuer,
        }[system]
        counter = CTX.Value("q", 0)
        result: dict[str, Any] = {}

        def consume() -> None:
            result["outcome"] = run_group(setup, [
                (url, f"lat-{i}", counter, m, poll) for i in range(cfg.latency_consumers)])

        th = threading.Thread(target=consume)
        th.start()
        time.sleep(1.5)  # consumers connect, LISTEN and go idle
        if system == "pgqueuer":
            calls = asyncio.run(systems.produce_pgqueuer(url, m, cfg.latency_gap))
        else:
            calls = systems.produce(url, base, m, cfg.latency_gap)
        th.join(timeout=120)
        outcome = result["outcome"]
        return [x for res in outcome.results for x in res["lat"]], calls
    finally:
        drop_db(cfg.cluster, url.rsplit("/", 1)[1].split("?")[0])


def _latency_graphile(cfg: Config, url: str) -> tuple[list[float], list[float]]:
    procs = systems.run_node_group(url, "listen", cfg.latency_consumers)
    lat: list[float] = []
    lock = threading.Lock()

    def reader(p: Any) -> None:
        for line in p.stdout:
            if line.startswith("lat "):
                with lock:
                    lat.append(float(line.split()[1]) / 1000.0)

    threads = [threading.Thread(target=reader, args=(p,), daemon=True) for p in procs]
    for t in threads:
        t.start()
    time.sleep(1.5)
    calls = systems.produce(url, "graphile", cfg.latency_records, cfg.latency_gap)
    deadline = time.monotonic() + 30
    while len(lat) < cfg.latency_records and time.monotonic() < deadline:
        time.sleep(0.05)
    for p in procs:
        p.stdin.write("stop\n")
        p.stdin.flush()
    for p in procs:
        p.wait(timeout=30)
    return lat, calls


def latency(cfg: Config) -> dict[str, dict[str, Sample]]:
    """Workload 3: pickup latency p50/p99 (ms), LISTEN/NOTIFY vs polling vs peers."""
    names = ["pgclaim-listen", "pgclaim-poll"] + [
        p for p in ("procrastinate", "pgqueuer", "graphile") if cfg.peers.get(p) is None]
    out = {s: {"p50": Sample(), "p99": Sample(), "max": Sample(), "call": Sample()}
           for s in names}
    for r in range(cfg.repeat):
        for s in names:
            lat, calls = _latency_once(cfg, s)
            out[s]["call"].add(percentile(calls, 0.5) * 1000)
            if len(lat) < cfg.latency_records:
                raise RuntimeError(f"{s}: saw {len(lat)} of {cfg.latency_records} records")
            for q, key in ((0.5, "p50"), (0.99, "p99"), (1.0, "max")):
                out[s][key].add(percentile(lat, q) * 1000)
            log(f"latency {s} run {r + 1}: p50 {percentile(lat, 0.5) * 1000:.2f} ms, "
                f"p99 {percentile(lat, 0.99) * 1000:.2f} ms")
    return out


# ---------------------------------------------------------------------------- 4. growth


def growth(cfg: Config) -> dict[int, dict[str, Any]]:
    """Workload 4: drain rate and claim latency beside 0..millions of finished records."""
    dbs: dict[int, str] = {}
    out: dict[int, dict[str, Any]] = {}
    try:
        for size in cfg.growth:
            url = systems.fresh_db(cfg.cluster, "pgclaim", f"growth_{size}")
            dbs[size] = url
            t = time.monotonic()
            with connect(url) as conn:
                step = 1_000_000
                for start in range(0, size, step):
                    conn.execute(
                        "insert into pgclaim.records (queue, status, run_at, payload, attempt,"
                        " max_attempts, enqueued_at, finished_at)"
                        " select 'bench', 'completed', now() - interval '1 day',"
                        " jsonb_build_object('n', g), 1, 5, now() - interval '1 day', now()"
                        " from generate_series(%s, %s) as g",
                        (start + 1, min(size, start + step)))
                conn.execute("vacuum analyze pgclaim.records")
            log(f"growth: loaded {size:,} finished records in {time.monotonic() - t:.0f} s")
            out[size] = {"cell": DrainCell(), "size": Sample(), "index": Sample(),
                         "dead": Sample()}
        for r in range(cfg.repeat):
            for size in cfg.growth:
                url = dbs[size]
                res = drain_once(cfg, "pgclaim", cfg.growth_workers, cfg.growth_batch,
                                 cfg.growth_records, timings=True, url=url)
                _add(out[size]["cell"], res)
                with connect(url) as conn:
                    conn.execute("select pg_stat_clear_snapshot()")
                    row = conn.execute(
                        "select pg_table_size('pgclaim.records'),"
                        " pg_indexes_size('pgclaim.records'), n_dead_tup"
                        " from pg_stat_user_tables where relid = 'pgclaim.records'::regclass"
                    ).fetchone()
                assert row is not None
                out[size]["size"].add(row[0] / 2**20)
                out[size]["index"].add(row[1] / 2**20)
                out[size]["dead"].add(row[2])
                log(f"growth {size:,} run {r + 1}: {res['rate']:,.0f}/s, claim p50 "
                    f"{res['claim_p50']:.2f} ms p99 {res['claim_p99']:.2f} ms, "
                    f"dead {row[2]:,}")
    finally:
        for url in dbs.values():
            drop_db(cfg.cluster, url.rsplit("/", 1)[1].split("?")[0])
    return out


# ---------------------------------------------------------------------------- 5. seeds


def _memory_child(url: str, n: int, out: Any) -> None:
    import pgclaim

    payload = {"data": "x" * 1000}
    client = pgclaim.QueueClient(url)
    before = rss_mb()
    ids = client.enqueue_many(systems.QUEUE, [payload] * n)
    done = 0
    while done < len(ids):
        got = client.claim(systems.QUEUE, "bench-mem", batch_size=100)
        if not got:
            break
        done += client.complete("bench-mem", [c.id for c in got],
                                lease_tokens=[c.lease_token for c in got])
    out.put({"growth": rss_mb() - before, "done": done})


def seeds(cfg: Config) -> dict[str, Sample]:
    """Workload 5: the seed figures."""
    out = {k: Sample() for k in ("claim_rate", "status_updates", "ops_10", "memory")}
    n = cfg.seed_records
    for r in range(cfg.repeat):
        res = drain_once(cfg, "pgclaim", 4, 100, n)
        out["claim_rate"].add(res["rate"])
        res = drain_once(cfg, "pgclaim", 1, 1, n // 2)
        out["status_updates"].add(2 * res["rate"])  # running, then completed
        res = drain_once(cfg, "pgclaim", 10, 1, n)
        out["ops_10"].add(2 * res["rate"])  # one claim and one complete call per record
        url = systems.fresh_db(cfg.cluster, "pgclaim", _tag())
        try:
            q: Any = CTX.Queue()
            p = CTX.Process(target=_memory_child, args=(url, 1000, q))
            p.start()
            mem = q.get(timeout=120)
            p.join()
            if mem["done"] != 1000:
                raise RuntimeError(f"memory seed completed {mem['done']} of 1000")
            out["memory"].add(mem["growth"])
        finally:
            drop_db(cfg.cluster, url.rsplit("/", 1)[1].split("?")[0])
        log(f"seeds run {r + 1}: " + ", ".join(f"{k} {v.values[-1]:,.1f}" for k, v in out.items()))
    return out


__all__ = ["Config", "Counters", "DrainCell", "drain", "enqueue", "growth", "latency", "seeds"]
