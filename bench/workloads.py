"""The workloads: enqueue, drain, pickup latency, growth and the seed figures."""
from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field
from math import isnan
from typing import Any

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
from procs import CTX, Poller, run_group
from psycopg.types.json import Jsonb


@dataclass
class Config:
    """Sizes and repetitions of one run of the suite."""

    cluster: str
    repeat: int = 3
    quick: bool = False
    enqueue_single: int = 5_000
    enqueue_batches: int = 100
    batch_of: int = 1_000
    compare_records: int = 20_000
    compare_workers: tuple[int, ...] = (4, 16)
    compare_batch: int = 100
    drain_records: int = 20_000
    drain_per_batch: int = 2_000
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
    scale_pending: int = 1_000_000
    scale_queues: int = 1_000
    scale_queue_records: int = 100
    scale_procs: int = 64
    scale_procs_records: int = 100_000
    scale_workers: int = 4
    peers: dict[str, str | None] = field(default_factory=dict)
    worker_skip: str | None = None
    peer_cfg: systems.PeerConfig = field(default_factory=systems.PeerConfig)


@dataclass
class DrainCell:
    """Measurements of one system at one (W, batch)."""

    rate: Sample = field(default_factory=Sample)
    """records/s to the last completion"""
    rate_exit: Sample = field(default_factory=Sample)
    """records/s to the last client process exit"""
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
    import asyncpg
    from pgqueuer import AsyncpgDriver, Queries

    conn = await asyncpg.connect(url)
    try:
        q = Queries(AsyncpgDriver(conn))
        t = time.perf_counter()
        if kind == "single":
            for _ in range(n):
                await q.enqueue("noop", None)
        else:
            for _ in range(cfg.enqueue_batches):
                await q.enqueue(["noop"] * cfg.batch_of, [None] * cfg.batch_of,
                                [0] * cfg.batch_of)
        return n / (time.perf_counter() - t)
    finally:
        await conn.close()


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
               timings: bool = False, url: str | None = None, loaded: bool = False
               ) -> dict[str, Any]:
    """Drains n pre-loaded records with system at W; both windows, counters per record, RSS.

    rate: records/s to the last completion; rate_exit: records/s to the last process exit."""
    own = url is None
    if url is None:
        url = systems.fresh_db(cfg.cluster, systems.base_system(system), _tag())
    try:
        if not loaded:
            systems.load(url, system, n)
        before = counters(url)
        poller = Poller(url, systems.unfinished_query(system), cfg.peer_cfg.poll_interval)
        lat: list[tuple[float, float, int]] = []
        client_last: float | None = None
        if system == "graphile":
            node = systems.drain_graphile(url, w, poller, cfg.peer_cfg)
            t0, to_exit, rss = node.t0, max(node.exits) - node.t0, node.rss
        else:
            setup, extras = systems.drain_setup(system, w, cfg.peer_cfg)
            outcome = run_group(setup, [(url, batch, f"bench-{system}-{i}", timings, *extra)
                                        for i, extra in enumerate(extras)],
                                on_start=poller.start)
            t0, to_exit = outcome.t0, outcome.to_exit
            client_last = outcome.client_last
            rss = [r["rss_mb"] for r in outcome.results]
            for res in outcome.results:
                lat.extend(res.get("claim_latency", []))
        done_at = poller.finish()
        polled = None if done_at is None else done_at - t0
        after = counters_settled(url, before)
        left = systems.remaining(url, system)
        if left:
            raise RuntimeError(f"{system} drain left {left} records unfinished")
        if system in CLIENT_TIMED:
            if client_last is None:
                raise RuntimeError(f"{system} clients reported no completion")
            to_last = client_last
        else:
            if polled is None:
                raise RuntimeError(f"{system}: the poll never saw the queue finished")
            # The last completion comes before the exit of the process that made it.
            to_last = min(polled, to_exit)
        polls = poller.polls + 1
        claims = [x[1] for x in lat if x[2] > 0]
        return {
            "rate": n / to_last,
            "rate_exit": n / to_exit,
            "to_last": to_last,
            "to_exit": to_exit,
            "polled": polled,
            "commits": (after.commits - before.commits - polls) / n,
            "statements": (after.statements - before.statements - polls) / n,
            "rss": max(rss) if rss else float("nan"),
            "claim_p50": percentile(claims, 0.5) * 1000 if claims else float("nan"),
            "claim_p99": percentile(claims, 0.99) * 1000 if claims else float("nan"),
            "claims": lat,
        }
    finally:
        if own:
            drop_db(cfg.cluster, url.rsplit("/", 1)[1].split("?")[0])


# The clients of these systems complete synchronously and report when their last completing
# statement returned; the others are timed to the first poll that sees nothing unfinished.
CLIENT_TIMED = ("raw", "pgclaim")
DRAIN_KEYS = ("rate", "rate_exit", "commits", "statements", "rss", "claim_p50", "claim_p99")


def _add(cell: DrainCell, res: dict[str, Any]) -> None:
    for k in DRAIN_KEYS:
        v = res[k]
        if not isnan(v):
            getattr(cell, k).add(v)


def _log_drain(label: str, res: dict[str, Any]) -> None:
    polled = res["polled"]
    log(f"{label}: {res['rate']:,.0f}/s to last completion ({res['to_last']:.3f} s),"
        f" {res['rate_exit']:,.0f}/s to exit ({res['to_exit']:.3f} s)"
        + (f", poll saw it finished at {polled:.3f} s" if polled is not None else "")
        + f"; {res['commits']:.3f} commits/rec, {res['statements']:.3f} stmts/rec")


COMPARED = ("raw", "pgclaim", "worker", "pgqueuer", "graphile", "procrastinate")


def compare(cfg: Config) -> dict[tuple[str, int], DrainCell]:
    """Workload 2: the side-by-side drain, every system draining the same records at each W
    (batch cfg.compare_batch), the systems interleaved and their order rotated each round."""
    names = [s for s in COMPARED if (s != "worker" or cfg.worker_skip is None)
             and cfg.peers.get(s) is None]
    out: dict[tuple[str, int], DrainCell] = {}
    n, b = cfg.compare_records, cfg.compare_batch
    for r in range(cfg.repeat):
        order = names[r % len(names):] + names[:r % len(names)]
        for w in cfg.compare_workers:
            for s in order:
                res = drain_once(cfg, s, w, b, n)
                _add(out.setdefault((s, w), DrainCell(records=n)), res)
                _log_drain(f"compare {s} W={w} run {r + 1}", res)
    return out


def drain(cfg: Config) -> dict[tuple[str, int, int], DrainCell]:
    """Workload 3: pgclaim's drain grid (SQL API, Worker, ceiling) over W and batch sizes."""
    names = ["pgclaim", "raw"] + (["worker"] if cfg.worker_skip is None else [])
    out: dict[tuple[str, int, int], DrainCell] = {}
    for r in range(cfg.repeat):
        for w in cfg.workers:
            for b in cfg.batches:
                n = min(cfg.drain_records, cfg.drain_per_batch * b)
                for s in names:
                    res = drain_once(cfg, s, w, b, n)
                    _add(out.setdefault((s, w, b), DrainCell(records=n)), res)
                    _log_drain(f"drain {s} W={w} batch={b} run {r + 1}", res)
    return out


# ---------------------------------------------------------------------------- 4. latency


LATENCY_SYSTEMS = ("worker", "pgclaim-listen", "pgclaim-poll", "graphile", "pgqueuer",
                   "procrastinate")


def _latency_once(cfg: Config, system: str) -> tuple[list[float], list[float]]:
    base = systems.base_system(system)
    url = systems.fresh_db(cfg.cluster, base, _tag())
    m = cfg.latency_records
    try:
        if system == "graphile":
            return _latency_graphile(cfg, url)
        poll = cfg.poll_interval if system == "pgclaim-poll" else None
        setup = {
            "worker": systems.listen_worker,
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
            calls = systems.produce(url, "pgclaim" if base == "pgclaim" else base, m,
                                    cfg.latency_gap)
        th.join(timeout=120)
        outcome = result["outcome"]
        return [x for res in outcome.results for x in res["lat"]], calls
    finally:
        drop_db(cfg.cluster, url.rsplit("/", 1)[1].split("?")[0])


def _latency_graphile(cfg: Config, url: str) -> tuple[list[float], list[float]]:
    """graphile-worker's fast configuration at W = the number of consumers: one process."""
    procs = systems.start_node(url, "listen", cfg.peer_cfg.graphile_options(cfg.latency_consumers))
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
    """Workload 4: pickup latency p50/p99 (ms): the Worker, the SQL API with LISTEN/NOTIFY and
    with polling, and the peers, interleaved."""
    names = [s for s in LATENCY_SYSTEMS if cfg.peers.get(s) is None
             and (s != "worker" or cfg.worker_skip is None)]
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


# ---------------------------------------------------------------------------- 5. growth


def growth(cfg: Config) -> dict[int, dict[str, Any]]:
    """Workload 5: drain rate and claim latency beside 0..millions of finished records."""
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
                        # finished records live in pgclaim.finished, with ids drawn
                        # from the records' own sequence (as if they had been enqueued)
                        "insert into pgclaim.finished (id, queue, status, priority, run_at, payload,"
                        " attempt, max_attempts, enqueued_at, finished_at)"
                        " select nextval(pg_get_serial_sequence('pgclaim.records', 'id')),"
                        " 'bench', 'completed', 0, now() - interval '1 day',"
                        " jsonb_build_object('n', g), 1, 5, now() - interval '1 day', now()"
                        " from generate_series(%s, %s) as g",
                        (start + 1, min(size, start + step)))
                conn.execute("vacuum analyze pgclaim.records")
                conn.execute("vacuum analyze pgclaim.finished")
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


# ---------------------------------------------------------------------------- 6. seeds


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
    """Workload 6: the seed figures."""
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


# ---------------------------------------------------------------------------- 7. scale


def _claim_window(claims: list[tuple[float, float, int]], first: bool, share: float = 0.1
                  ) -> list[float]:
    """Latencies (s) of the first or last ``share`` of the claims that returned records."""
    got = sorted((c for c in claims if c[2] > 0), key=lambda c: c[0])
    k = max(1, int(len(got) * share))
    return [c[1] for c in (got[:k] if first else got[-k:])]


def scale_pending(cfg: Config) -> dict[str, Any]:
    """Scale 1: a drain of cfg.scale_pending pending records through the SQL API; claim_batch
    latency over the first and the last 10 % of the claims."""
    out: dict[str, Any] = {"cell": DrainCell(records=cfg.scale_pending)}
    for k in ("start_p50", "start_p99", "end_p50", "end_p99", "load_s"):
        out[k] = Sample()
    for r in range(cfg.repeat):
        url = systems.fresh_db(cfg.cluster, "pgclaim", _tag())
        try:
            t = time.monotonic()
            systems.load(url, "pgclaim", cfg.scale_pending)
            out["load_s"].add(time.monotonic() - t)
            res = drain_once(cfg, "pgclaim", cfg.scale_workers, cfg.compare_batch,
                             cfg.scale_pending, timings=True, url=url, loaded=True)
        finally:
            drop_db(cfg.cluster, url.rsplit("/", 1)[1].split("?")[0])
        _add(out["cell"], res)
        for first, key in ((True, "start"), (False, "end")):
            w = _claim_window(res["claims"], first)
            out[f"{key}_p50"].add(percentile(w, 0.5) * 1000)
            out[f"{key}_p99"].add(percentile(w, 0.99) * 1000)
        _log_drain(f"scale-pending {cfg.scale_pending:,} run {r + 1}", res)
        log(f"scale-pending claim p50/p99 ms: start {out['start_p50'].values[-1]:.2f}/"
            f"{out['start_p99'].values[-1]:.2f}, end {out['end_p50'].values[-1]:.2f}/"
            f"{out['end_p99'].values[-1]:.2f}")
    return out


def _drain_queues_once(cfg: Config, nq: int, per_queue: int, w: int) -> dict[str, Any]:
    """Drains nq queues of per_queue records each with w SQL API clients cycling over them."""
    url = systems.fresh_db(cfg.cluster, "pgclaim", _tag())
    names = [systems.QUEUE] if nq == 1 else [f"q{i:04d}" for i in range(nq)]
    n = nq * per_queue
    try:
        with connect(url) as conn:
            for q in names:
                conn.execute("select pgclaim.create_queue(queue => %s)", (q,))
                conn.execute("select count(*) from pgclaim.enqueue_batch(%s, array(select"
                             " '{}'::jsonb from generate_series(1, %s)))", (q, per_queue))
            conn.execute("vacuum analyze pgclaim.records")
            conn.execute("analyze pgclaim.queues")
        before = counters(url)
        outcome = run_group(systems.drain_queues, [
            (url, cfg.compare_batch, f"bench-q-{i}", True, names, i * nq // w)
            for i in range(w)])
        after = counters_settled(url, before)
        left = systems.remaining(url, "pgclaim")
        if left:
            raise RuntimeError(f"{nq} queues: {left} records unfinished")
        claims = [c for res in outcome.results for c in res["claim_latency"]]
        full = [c[1] for c in claims if c[2] > 0]
        empty = [c[1] for c in claims if c[2] == 0]
        last = outcome.client_last
        assert last is not None
        return {
            "rate": n / last, "rate_exit": n / outcome.to_exit,
            "commits": (after.commits - before.commits) / n,
            "statements": (after.statements - before.statements) / n,
            "claim_p50": percentile(full, 0.5) * 1000, "claim_p99": percentile(full, 0.99) * 1000,
            "empty_p50": percentile(empty, 0.5) * 1000 if empty else float("nan"),
            "claims": len(full), "empty_claims": len(empty),
            "queues_touched": len({q for res in outcome.results for q in res["queues"]}),
        }
    finally:
        drop_db(cfg.cluster, url.rsplit("/", 1)[1].split("?")[0])


def scale_queues(cfg: Config) -> dict[str, Any]:
    """Scale 2: cfg.scale_queues queues of cfg.scale_queue_records records, drained by W SQL API
    clients that each cycle over every queue, against the same records in one queue."""
    keys = ("rate", "rate_exit", "commits", "statements", "claim_p50", "claim_p99", "empty_p50",
            "claims", "empty_claims", "queues_touched")
    out: dict[str, dict[str, Sample]] = {
        kind: {k: Sample() for k in keys} for kind in ("many", "one")}
    nq, per = cfg.scale_queues, cfg.scale_queue_records
    for r in range(cfg.repeat):
        for kind in (("many", "one") if r % 2 == 0 else ("one", "many")):
            res = (_drain_queues_once(cfg, nq, per, cfg.scale_workers) if kind == "many"
                   else _drain_queues_once(cfg, 1, nq * per, cfg.scale_workers))
            for k in keys:
                if not isnan(res[k]):
                    out[kind][k].add(res[k])
            log(f"scale-queues {kind} run {r + 1}: {res['rate']:,.0f}/s to last completion,"
                f" claim p50 {res['claim_p50']:.2f} ms p99 {res['claim_p99']:.2f} ms,"
                f" {res['queues_touched']} queues claimed from, {res['empty_claims']} empty claims")
    return out


def scale_procs(cfg: Config) -> dict[tuple[str, int], DrainCell]:
    """Scale 3: the SQL API and the Worker with cfg.scale_procs client processes, against the
    same drain at cfg.scale_workers processes, interleaved."""
    out: dict[tuple[str, int], DrainCell] = {}
    n = cfg.scale_procs_records
    names = ["pgclaim"] + (["worker"] if cfg.worker_skip is None else [])
    for r in range(cfg.repeat):
        for w in (cfg.scale_procs, cfg.scale_workers):
            for s in names:
                res = drain_once(cfg, s, w, cfg.compare_batch, n, timings=True)
                _add(out.setdefault((s, w), DrainCell(records=n)), res)
                _log_drain(f"scale-procs {s} W={w} run {r + 1}", res)
    return out


__all__ = ["Config", "Counters", "DrainCell", "compare", "drain", "enqueue", "growth", "latency",
           "scale_pending", "scale_procs", "scale_queues", "seeds"]
