"""The systems compared: pgclaim (SQL API and Python Worker), the raw-SQL ceiling, and the peers
(pgqueuer, graphile-worker, procrastinate), each run the way its own documentation recommends for
throughput. Each system has a template database, a loader, the query that tells whether a
record is unfinished, and the client code of its drain and pickup-latency workloads."""
from __future__ import annotations

import asyncio
import contextlib
import importlib
import importlib.metadata
import inspect
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
from common import ROOT, admin, clone_db, connect, db_url, drop_db, load_pgclaim, log
from procs import Poller, wait_popen_exits
from psycopg.types.json import Jsonb

QUEUE = "bench"
LAT_QUEUE = "lat"
NODE_DIR = ROOT / "bench" / "node"
GRAPHILE_VERSION = json.loads((NODE_DIR / "package.json").read_text())[
    "dependencies"]["graphile-worker"]

# The bare equivalents: the same record table without the API functions, and the ceiling.
BARE_SQL = """
create extension if not exists pg_stat_statements;
select pgclaim.create_queue(queue => 'bench');
select pgclaim.create_queue(queue => 'lat');
create schema bare;
create table bare.records (like pgclaim.records including all)
    with (fillfactor = 70);
create table bare.raw (
    id bigint generated always as identity primary key,
    status text not null default 'pending',
    payload jsonb not null
);
create index raw_pending_idx on bare.raw (id) where status = 'pending';
"""


def template_name(system: str) -> str:
    """The template database of a system."""
    return f"bench_tpl_{system}"


def base_system(system: str) -> str:
    """The template a system's runs are copied from."""
    return "pgclaim" if system in ("pgclaim", "raw", "worker") or system.startswith(
        "pgclaim") else system


# ---------------------------------------------------------------------------- configurations


@dataclass(frozen=True)
class PeerConfig:
    """How the peers are run; every value is the peer's documented recommendation for
    throughput (docs/performance.md, "What is measured", names where each is recommended)."""

    graphile_local_queue: int | None = None
    """graphile-worker ``localQueue.size``; None: the larger of concurrency + 1 and 500"""
    graphile_complete_delay: int = 0
    pgqueuer_procs: int | None = None
    """pgqueuer processes, W / procs QueueManagers each; None: one per core (at most W)"""
    procrastinate_procs: int | None = None
    """procrastinate processes, concurrency W / procs each; None: one per core (at most W)"""
    poll_interval: float = 0.005
    """how often the database is asked whether a record is unfinished (s)"""

    def graphile_options(self, w: int) -> dict[str, Any]:
        """graphile-worker's preset (``worker`` section) for one process with concurrency W."""
        size = self.graphile_local_queue or max(w + 1, 500)
        return {
            "concurrentJobs": w,
            "maxPoolSize": max(10, w + 2),
            "localQueue": {"size": size},
            "completeJobBatchDelay": self.graphile_complete_delay,
            "failJobBatchDelay": self.graphile_complete_delay,
        }

    def pgqueuer_layout(self, w: int) -> tuple[int, int]:
        """(processes, QueueManagers each) of pgqueuer at W."""
        return _spread(w, self.pgqueuer_procs)

    def procrastinate_layout(self, w: int) -> tuple[int, int]:
        """(processes, concurrency each) of procrastinate at W."""
        return _spread(w, self.procrastinate_procs)


def _spread(w: int, procs: int | None) -> tuple[int, int]:
    """W consumers over procs processes (default: one per core): (processes, consumers each).

    Python's asyncio consumers share one core per process; on this machine's cores one
    process per core drained fastest for both Python peers (W processes mostly contend)."""
    n = max(1, min(w, procs or os.cpu_count() or 1))
    while w % n:
        n -= 1
    return n, w // n


PEER_CONFIG = PeerConfig()


def settings(system: str, w: int, batch: int, cfg: PeerConfig = PEER_CONFIG) -> str:
    """One line that says how a system ran at (W, batch)."""
    if system == "raw":
        return (f"{w} processes, one psycopg connection each, autocommit; bare claim and finish"
                f" statements, batch {batch}")
    if system == "pgclaim":
        return (f"{w} processes, one psycopg connection each, autocommit; claim_batch(batch_size"
                f" => {batch}) then complete with the lease tokens")
    if system == "worker":
        return (f"{w} processes, one pgclaim.Worker each (default concurrency 4, batch_size"
                f" {batch}, LISTEN on), run(until_empty=True); sync no-op handler")
    if system == "pgqueuer":
        procs, per = cfg.pgqueuer_layout(w)
        return (f"{procs} process(es) x {per} QueueManager(s), each on its own asyncpg"
                f" connection (AsyncpgDriver), uvloop; run(batch_size={batch},"
                f" mode=drain, max_concurrent_tasks unset); `pgq autovac` table settings;"
                f" durability durable; async no-op entrypoint")
    if system == "graphile":
        o = cfg.graphile_options(w)
        return (f"1 node process, runOnce with concurrentJobs {o['concurrentJobs']}, maxPoolSize"
                f" {o['maxPoolSize']}, localQueue.size {o['localQueue']['size']},"
                f" completeJobBatchDelay {o['completeJobBatchDelay']}, failJobBatchDelay"
                f" {o['failJobBatchDelay']}; async no-op task")
    if system == "procrastinate":
        procs, conc = cfg.procrastinate_layout(w)
        return (f"{procs} process(es), run_worker_async(concurrency={conc}, wait=False,"
                f" listen_notify=True), PsycopgConnector pool max_size {conc + 2};"
                f" async no-op task")
    raise ValueError(system)


def versions() -> dict[str, str]:
    """The version of every system and client library the suite drives."""
    out: dict[str, str] = {}
    for dist in ("pgclaim", "psycopg", "pgqueuer", "asyncpg", "uvloop", "procrastinate"):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = "not installed"
    pkg = NODE_DIR / "node_modules" / "graphile-worker" / "package.json"
    out["graphile-worker"] = json.loads(pkg.read_text())["version"] if pkg.exists() else (
        "not installed")
    node = shutil.which("node")
    out["node"] = subprocess.run([node, "--version"], check=False, capture_output=True,
                                 text=True).stdout.strip() if node else "not found"
    return out


# ---------------------------------------------------------------------------- availability


def peer_status() -> dict[str, str | None]:
    """For each peer, None when it can run, else the reason it is skipped."""
    out: dict[str, str | None] = {}
    for peer, mods in (("procrastinate", ("procrastinate",)),
                       ("pgqueuer", ("pgqueuer", "asyncpg", "uvloop"))):
        try:
            for mod in mods:
                importlib.import_module(mod)
            out[peer] = None
        except ImportError as exc:
            out[peer] = f"not importable ({exc}); pip install -e '.[bench]'"
    installed = versions()["graphile-worker"]
    if shutil.which("node") is None:
        out["graphile"] = "node not found on PATH"
    elif installed != GRAPHILE_VERSION:
        out["graphile"] = (f"graphile-worker {GRAPHILE_VERSION} not installed in bench/node"
                           f" (found: {installed}; npm install failed?)")
    else:
        out["graphile"] = None
    return out


def worker_status() -> str | None:
    """None when the Python Worker can be used, else why its rows are skipped."""
    try:
        mod = importlib.import_module("pgclaim")
        worker = mod.Worker
    except (ImportError, AttributeError) as exc:
        return f"`from pgclaim import Worker` fails ({exc!r})"
    run = getattr(worker, "run", None)
    if run is None or "until_empty" not in inspect.signature(run).parameters:
        return "pgclaim.Worker has no run(until_empty=...)"
    return None


def install_deps() -> None:
    """Installs what the suite needs on a fresh clone: the bench extra and graphile-worker."""
    try:
        for mod in ("procrastinate", "pgqueuer", "asyncpg", "uvloop"):
            importlib.import_module(mod)
    except ImportError:
        log("installing the bench extra (procrastinate, pgqueuer, asyncpg)")
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "-e", f"{ROOT}[bench]"], check=False
        )
        importlib.invalidate_caches()
    if shutil.which("npm") and versions()["graphile-worker"] != GRAPHILE_VERSION:
        log(f"installing graphile-worker {GRAPHILE_VERSION} into bench/node (npm ci)")
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--silent"], cwd=NODE_DIR, check=False
        )


# ---------------------------------------------------------------------------- templates


def make_template(cluster: str, system: str) -> str:
    """(Re)creates the template database of a system; returns its name."""
    name = template_name(system)
    if system == "pgclaim":
        load_pgclaim(cluster, name)
        with connect(db_url(cluster, name)) as conn:
            conn.execute(BARE_SQL)  # type: ignore[arg-type]
        return name
    drop_db(cluster, name)
    admin(cluster, f'create database "{name}"')
    url = db_url(cluster, name)
    with connect(url) as conn:
        conn.execute("create extension if not exists pg_stat_statements")
    if system == "procrastinate":
        app = procrastinate_app(url)
        with app.open():
            app.schema_manager.apply_schema()
    elif system == "pgqueuer":
        asyncio.run(_pgqueuer_install(url))
    elif system == "graphile":
        subprocess.run(
            [str(NODE_DIR / "node_modules" / ".bin" / "graphile-worker"), "-c", url,
             "--schema-only"],
            check=True, capture_output=True, text=True,
        )
    else:
        raise ValueError(system)
    return name


async def _pgqueuer_install(url: str) -> None:
    import asyncpg
    from pgqueuer import AsyncpgDriver, Queries

    conn = await asyncpg.connect(url)
    try:
        q = Queries(AsyncpgDriver(conn))
        await q.install()
        # The documented tuning of the queue table's autovacuum (`pgq autovac`).
        await q.optimize_autovacuum()
    finally:
        await conn.close()


def fresh_db(cluster: str, system: str, tag: str) -> str:
    """A new database copied from the system's template; returns its URL."""
    return clone_db(cluster, template_name(system), f"bench_run_{system}_{tag}")


# ---------------------------------------------------------------------------- loading


QUEUE_TABLE = {
    "pgclaim": "pgclaim.records",
    "worker": "pgclaim.records",
    "raw": "bare.raw",
    "graphile": "graphile_worker._private_jobs",
    "procrastinate": "procrastinate_jobs",
    "pgqueuer": "pgqueuer",
}

# Whether a record is unfinished, each answered from an index (the poller's session turns
# sequential and bitmap scans off, so the plan does not depend on the statistics of a table
# that empties while it is polled): cheap enough to ask every few milliseconds while a drain
# runs. The ceiling's clients report their own last completion (its table has no index on its
# running state), so its query only adds the same load.
UNFINISHED = {
    "pgclaim": "select exists(select from pgclaim.records where queue = 'bench'"
               " and status = 'pending') or exists(select from pgclaim.records"
               " where queue = 'bench' and status = 'running')",
    "raw": "select exists(select from bare.raw where status = 'pending')",
    "graphile": "select exists(select from graphile_worker._private_jobs)",
    "procrastinate": "select exists(select from procrastinate_jobs"
                     " where status in ('todo', 'doing'))",
    "pgqueuer": "select exists(select from pgqueuer where status = 'queued')"
                " or exists(select from pgqueuer where status = 'picked')",
}


def unfinished_query(system: str) -> str:
    """The poll query of a system."""
    return UNFINISHED["pgclaim" if system == "worker" else system]


def load(url: str, system: str, n: int) -> None:
    """Puts n no-op records in the system's queue (not measured), then vacuums and analyzes."""
    chunk = 10_000
    with connect(url) as conn:
        done = 0
        while done < n:
            k = min(chunk, n - done)
            if system in ("pgclaim", "worker"):
                conn.execute(
                    "select count(*) from pgclaim.enqueue_batch(%s,"
                    " array(select '{}'::jsonb from generate_series(1, %s)))", (QUEUE, k))
            elif system == "raw":
                conn.execute(
                    "insert into bare.raw (payload) select '{}'::jsonb"
                    " from generate_series(1, %s)", (k,))
            elif system == "graphile":
                conn.execute(
                    "select count(*) from graphile_worker.add_jobs(array("
                    " select row('noop', '{}'::json, null, null, null, null, null, null)"
                    "::graphile_worker.job_spec from generate_series(1, %s)))", (k,))
            elif system == "procrastinate":
                conn.execute(
                    "insert into procrastinate_jobs (queue_name, task_name, args, lock,"
                    " queueing_lock, priority)"
                    " select %s, 'noop', '{}'::jsonb, null, null, 0 from generate_series(1, %s)",
                    (QUEUE, k))
            elif system == "pgqueuer":
                conn.execute(
                    "insert into pgqueuer (priority, entrypoint, payload, status)"
                    " select 0, 'noop', null, 'queued' from generate_series(1, %s)", (k,))
            else:
                raise ValueError(system)
            done += k
        conn.execute(f"vacuum analyze {QUEUE_TABLE[system]}")  # type: ignore[arg-type]


def remaining(url: str, system: str) -> int:
    """How many records of the queue are not finished (0 after a complete drain)."""
    sql = {
        "pgclaim": "select count(*) from pgclaim.records where status in ('pending', 'running')",
        "raw": "select count(*) from bare.raw where status <> 'done'",
        "graphile": "select count(*) from graphile_worker._private_jobs",
        "procrastinate": "select count(*) from procrastinate_jobs where status in ('todo', 'doing')",
        "pgqueuer": "select count(*) from pgqueuer",
    }["pgclaim" if system == "worker" else system]
    with connect(url) as conn:
        row = conn.execute(sql).fetchone()  # type: ignore[arg-type]
    assert row is not None
    return int(row[0])


# ---------------------------------------------------------------------------- drain clients
#
# Each setup runs in its client process before the start signal and returns the measured
# function; connections are opened after the signal, so every system's window includes its
# own start-up. ``last_done`` (monotonic) is the end of the process's last completing call,
# where the client knows it.


def drain_sql_api(url: str, batch: int, wid: str, timings: bool, queue: str = QUEUE
                  ) -> Callable[[], dict[str, Any]]:
    """pgclaim through the SQL API: claim_batch, then complete with the lease tokens."""
    claim = "select id, lease_token from pgclaim.claim_batch(%s, %s, %s)"
    complete = "select pgclaim.complete(%s, %s, %s)"

    def go() -> dict[str, Any]:
        done = 0
        lat: list[tuple[float, float, int]] = []
        last_done = None
        with psycopg.connect(url, autocommit=True) as conn:
            while True:
                t = time.monotonic()
                rows = conn.execute(claim, (queue, wid, batch)).fetchall()
                if timings:
                    lat.append((t, time.monotonic() - t, len(rows)))
                if not rows:
                    break
                ids = [r[0] for r in rows]
                tokens = [r[1] for r in rows]
                done += conn.execute(complete, (wid, ids, tokens)).fetchone()[0]  # type: ignore[index]
                last_done = time.monotonic()
        return {"done": done, "claim_latency": lat, "last_done": last_done}

    return go


def drain_queues(url: str, batch: int, wid: str, timings: bool, queues: list[str],
                 offset: int) -> Callable[[], dict[str, Any]]:
    """pgclaim's SQL API over many queues: claim_batch from each queue in turn (starting at
    ``offset``), complete; done after a whole pass over the queues found nothing."""
    claim = "select id, lease_token from pgclaim.claim_batch(%s, %s, %s)"
    complete = "select pgclaim.complete(%s, %s, %s)"

    def go() -> dict[str, Any]:
        done = empties = 0
        i = offset
        lat: list[tuple[float, float, int]] = []
        touched: set[str] = set()
        last_done = None
        with psycopg.connect(url, autocommit=True) as conn:
            while empties < len(queues):
                q = queues[i % len(queues)]
                i += 1
                t = time.monotonic()
                rows = conn.execute(claim, (q, wid, batch)).fetchall()
                if timings:
                    lat.append((t, time.monotonic() - t, len(rows)))
                if not rows:
                    empties += 1
                    continue
                empties = 0
                touched.add(q)
                done += conn.execute(complete, (wid, [r[0] for r in rows],  # type: ignore[index]
                                                [r[1] for r in rows])).fetchone()[0]
                last_done = time.monotonic()
        return {"done": done, "claim_latency": lat, "last_done": last_done,
                "queues": sorted(touched)}

    return go


def drain_raw(url: str, batch: int, wid: str, timings: bool) -> Callable[[], dict[str, Any]]:
    """The raw-SQL ceiling: the bare claim and finish statements on a bare table."""
    claim = (
        "with c as (select id from bare.raw where status = 'pending' order by id limit %s"
        " for update skip locked) update bare.raw as t set status = 'running' from c"
        " where t.id = c.id returning t.id"
    )
    finish = "update bare.raw set status = 'done' where id = any(%s)"

    def go() -> dict[str, Any]:
        done = 0
        last_done = None
        with psycopg.connect(url, autocommit=True) as conn:
            while True:
                ids = [r[0] for r in conn.execute(claim, (batch,)).fetchall()]
                if not ids:
                    break
                done += conn.execute(finish, (ids,)).rowcount
                last_done = time.monotonic()
        return {"done": done, "last_done": last_done}

    return go


def drain_worker(url: str, batch: int, wid: str, timings: bool
                 ) -> Callable[[], dict[str, Any]]:
    """pgclaim through the Python Worker (its default concurrency), run until the queue is empty."""
    import pgclaim

    def go() -> dict[str, Any]:
        client = pgclaim.QueueClient(url)
        wanted = {"batch_size": batch, "install_signals": False, "worker_id": wid}
        params = inspect.signature(pgclaim.Worker).parameters
        worker = pgclaim.Worker(client, QUEUE, _noop,
                                **{k: v for k, v in wanted.items() if k in params})
        stats = worker.run(until_empty=True)
        client.close()
        return {"done": getattr(stats, "completed", 0)}

    return go


def procrastinate_app(url: str, max_size: int = 3) -> Any:
    """A procrastinate App over psycopg with the no-op tasks registered."""
    import procrastinate

    app = procrastinate.App(connector=procrastinate.PsycopgConnector(
        conninfo=url, min_size=1, max_size=max_size))
    app.task(name="noop", queue=QUEUE)(_async_noop)
    return app


def _noop(*_args: Any, **_kwargs: Any) -> None:
    return None


async def _async_noop(*_args: Any, **_kwargs: Any) -> None:
    return None


def drain_procrastinate(url: str, batch: int, wid: str, timings: bool, concurrency: int = 1
                        ) -> Callable[[], dict[str, Any]]:
    """procrastinate: one worker with ``concurrency`` sub-workers, exits once the queue is empty.

    Its documentation sizes the pool at the concurrency plus one (and the LISTEN connection
    comes from the same pool): max_size = concurrency + 2."""
    import logging

    logging.getLogger("procrastinate").setLevel(logging.WARNING)
    app = procrastinate_app(url, max_size=concurrency + 2)

    def go() -> dict[str, Any]:
        async def main() -> None:
            async with app.open_async():
                await app.run_worker_async(
                    queues=[QUEUE], concurrency=concurrency, wait=False,
                    install_signal_handlers=False, name=wid)
        asyncio.run(main())
        return {"done": 0}

    return go


def drain_pgqueuer(url: str, batch: int, wid: str, timings: bool, managers: int = 1
                   ) -> Callable[[], dict[str, Any]]:
    """pgqueuer: ``managers`` QueueManagers in drain mode, each on its own asyncpg connection
    (AsyncpgDriver, as its performance guide recommends), on uvloop (as ``pgq run`` does)."""
    import asyncpg
    import uvloop
    from pgqueuer import AsyncpgDriver, Queries, QueueManager
    from pgqueuer.types import QueueExecutionMode

    async def one() -> None:
        conn = await asyncpg.connect(url)
        try:
            qm = QueueManager(Queries(AsyncpgDriver(conn)))

            @qm.entrypoint("noop")
            async def noop(job: Any) -> None:
                return None

            await qm.run(batch_size=batch, mode=QueueExecutionMode.drain)
        finally:
            await conn.close()

    def go() -> dict[str, Any]:
        async def main() -> None:
            await asyncio.gather(*(one() for _ in range(managers)))
        uvloop.run(main())
        return {"done": 0}

    return go


def drain_setup(system: str, w: int, cfg: PeerConfig = PEER_CONFIG
                ) -> tuple[Callable[..., Any], list[tuple[Any, ...]]]:
    """The client setup of a Python system at W and the extra arguments of each process."""
    if system == "pgqueuer":
        procs, per = cfg.pgqueuer_layout(w)
        return drain_pgqueuer, [(per,)] * procs
    if system == "procrastinate":
        procs, conc = cfg.procrastinate_layout(w)
        return drain_procrastinate, [(conc,)] * procs
    setup = {"worker": drain_worker, "pgclaim": drain_sql_api, "raw": drain_raw}[system]
    return setup, [()] * w


def start_node(url: str, mode: str, options: dict[str, Any], n: int = 1
               ) -> list[subprocess.Popen[str]]:
    """Starts n graphile-worker node processes and waits until each printed 'ready'."""
    procs = [
        subprocess.Popen(
            ["node", str(NODE_DIR / "driver.js"), mode, url, json.dumps(options)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            bufsize=1,
        )
        for _ in range(n)
    ]
    for p in procs:
        assert p.stdout is not None
        line = p.stdout.readline().strip()
        if line != "ready":
            err = p.stderr.read() if p.stderr else ""
            raise RuntimeError(f"graphile driver did not start: {line!r} {err[-2000:]}")
    return procs


@dataclass
class NodeOutcome:
    """A graphile-worker drain on the monotonic clock."""

    t0: float
    exits: list[float]
    rss: list[float]


def drain_graphile(url: str, w: int, poller: Poller | None = None,
                   cfg: PeerConfig = PEER_CONFIG) -> NodeOutcome:
    """graphile-worker: one node process, runOnce with concurrency W and its batching options."""
    procs = start_node(url, "drain", cfg.graphile_options(w))
    t0 = time.monotonic()
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    if poller is not None:
        poller.start(t0)
    exits = wait_popen_exits(procs, t0 + 900)
    rss: list[float] = []
    for p in procs:
        assert p.stdout is not None
        out = p.stdout.read().strip()
        if not out.startswith("done"):
            err = p.stderr.read() if p.stderr else ""
            raise RuntimeError(f"graphile drain failed: {out!r} {err[-2000:]}")
        rss.append(float(json.loads(out.split(None, 1)[1])["rss"]))
    return NodeOutcome(t0, exits, rss)


# ---------------------------------------------------------------------------- pickup latency


def listen_pgclaim(url: str, wid: str, counter: Any, target: int, poll: float | None
                   ) -> Callable[[], dict[str, Any]]:
    """A pgclaim consumer on the SQL API: LISTEN and claim on each wake-up, or (poll) claim
    every poll s."""
    conn = psycopg.connect(url, autocommit=True)
    if poll is None:
        conn.execute(f"listen pgclaim_{LAT_QUEUE}")
    claim = "select id, lease_token, payload from pgclaim.claim_batch(%s, %s, %s)"
    complete = "select pgclaim.complete(%s, %s, %s)"

    def go() -> dict[str, Any]:
        lat: list[float] = []
        with conn:
            while counter.value < target:
                rows = conn.execute(claim, (LAT_QUEUE, wid, 10)).fetchall()
                if rows:
                    now = time.time()
                    lat.extend(now - r[2]["t"] for r in rows)
                    conn.execute(complete, (wid, [r[0] for r in rows], [r[1] for r in rows]))
                    with counter.get_lock():
                        counter.value += len(rows)
                    continue
                if poll is None:
                    for _ in conn.notifies(timeout=0.5, stop_after=1):
                        pass
                else:
                    time.sleep(poll)
        return {"lat": lat}

    return go


def listen_worker(url: str, wid: str, counter: Any, target: int, poll: float | None
                  ) -> Callable[[], dict[str, Any]]:
    """An idle pgclaim.Worker (its defaults, LISTEN on); the handler records the time from just
    before the enqueue call to its own start."""
    import threading

    import pgclaim

    client = pgclaim.QueueClient(url)
    lat: list[float] = []

    def handler(record: Any) -> None:
        lat.append(time.time() - record.payload["t"])
        with counter.get_lock():
            counter.value += 1

    wanted = {"install_signals": False, "worker_id": wid}
    params = inspect.signature(pgclaim.Worker).parameters
    worker = pgclaim.Worker(client, LAT_QUEUE, handler,
                            **{k: v for k, v in wanted.items() if k in params})

    def go() -> dict[str, Any]:
        def stopper() -> None:
            while counter.value < target and not worker.stopping:
                time.sleep(0.05)
            worker.stop()

        threading.Thread(target=stopper, daemon=True).start()
        worker.run()
        client.close()
        return {"lat": lat}

    return go


def listen_procrastinate(url: str, wid: str, counter: Any, target: int, poll: float | None
                         ) -> Callable[[], dict[str, Any]]:
    """A procrastinate worker with listen_notify on; the task records its pickup latency."""
    import logging

    import procrastinate

    logging.getLogger("procrastinate").setLevel(logging.WARNING)
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(
        conninfo=url, min_size=1, max_size=3))
    lat: list[float] = []

    @app.task(name="lat", queue=LAT_QUEUE)
    async def lat_task(t: float) -> None:
        lat.append(time.time() - t)
        with counter.get_lock():
            counter.value += 1

    def go() -> dict[str, Any]:
        async def main() -> None:
            async with app.open_async():
                task = asyncio.create_task(app.run_worker_async(
                    queues=[LAT_QUEUE], concurrency=1, wait=True, listen_notify=True,
                    install_signal_handlers=False, name=wid))
                while counter.value < target and not task.done():
                    await asyncio.sleep(0.05)
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        asyncio.run(main())
        return {"lat": lat}

    return go


def listen_pgqueuer(url: str, wid: str, counter: Any, target: int, poll: float | None
                    ) -> Callable[[], dict[str, Any]]:
    """A pgqueuer QueueManager on asyncpg (LISTEN on its channel); the entrypoint records the
    latency."""
    lat: list[float] = []

    def go() -> dict[str, Any]:
        import asyncpg
        import uvloop
        from pgqueuer import AsyncpgDriver, Queries, QueueManager

        async def main() -> None:
            conn = await asyncpg.connect(url)
            try:
                qm = QueueManager(Queries(AsyncpgDriver(conn)))

                @qm.entrypoint("lat")
                async def lat_ep(job: Any) -> None:
                    lat.append(time.time() - json.loads(job.payload)["t"])
                    with counter.get_lock():
                        counter.value += 1

                async def stopper() -> None:
                    while counter.value < target:
                        await asyncio.sleep(0.05)
                    qm.shutdown.set()

                stop = asyncio.create_task(stopper())
                await qm.run(batch_size=1)
                await stop
            finally:
                await conn.close()
        uvloop.run(main())
        return {"lat": lat}

    return go


def produce(url: str, system: str, m: int, gap: float) -> list[float]:
    """Adds m records one at a time, gap seconds apart, each carrying its send time.

    Returns how long each enqueue call took (s)."""
    calls: list[float] = []
    with connect(url) as conn:
        for _ in range(m):
            t_next = time.monotonic() + gap
            payload = {"t": time.time()}
            t_call = time.perf_counter()
            if system == "pgclaim":
                conn.execute("select pgclaim.enqueue(%s, %s)", (LAT_QUEUE, Jsonb(payload)))
            elif system == "procrastinate":
                conn.execute(
                    "select procrastinate_defer_jobs_v1(array[row(%s, 'lat', 0, null, null,"
                    " %s, null)::procrastinate_job_to_defer_v1])", (LAT_QUEUE, Jsonb(payload)))
            elif system == "pgqueuer":
                raise ValueError("pgqueuer is produced through its client")
            elif system == "graphile":
                conn.execute("select graphile_worker.add_job('lat', %s::json)",
                             (json.dumps(payload),))
            calls.append(time.perf_counter() - t_call)
            delay = t_next - time.monotonic()
            if delay > 0:
                time.sleep(delay)
    return calls


async def produce_pgqueuer(url: str, m: int, gap: float) -> list[float]:
    """pgqueuer's producer: Queries.enqueue on asyncpg, one at a time, gap seconds apart."""
    import asyncpg
    from pgqueuer import AsyncpgDriver, Queries

    calls: list[float] = []
    conn = await asyncpg.connect(url)
    try:
        q = Queries(AsyncpgDriver(conn))
        for _ in range(m):
            t_next = time.monotonic() + gap
            t_call = time.perf_counter()
            await q.enqueue("lat", json.dumps({"t": time.time()}).encode())
            calls.append(time.perf_counter() - t_call)
            delay = t_next - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
    finally:
        await conn.close()
    return calls
