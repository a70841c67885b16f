"""The systems compared: pgclaim, the raw-SQL ceiling, and the peers (procrastinate, pgqueuer,
graphile-worker). Each has a template database, a loader and the client code of its drain and
pickup-latency workloads."""
from __future__ import annotations

import asyncio
import contextlib
import importlib
import inspect
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import psycopg
from common import ROOT, admin, clone_db, connect, db_url, drop_db, load_pgclaim, log
from psycopg.types.json import Jsonb

QUEUE = "bench"
LAT_QUEUE = "lat"
NODE_DIR = ROOT / "bench" / "node"

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


# ---------------------------------------------------------------------------- availability


def peer_status() -> dict[str, str | None]:
    """For each peer, None when it can run, else the reason it is skipped."""
    out: dict[str, str | None] = {}
    for mod in ("procrastinate", "pgqueuer"):
        try:
            importlib.import_module(mod)
            out[mod] = None
        except ImportError as exc:
            out[mod] = f"not importable ({exc}); pip install -e '.[bench]'"
    if shutil.which("node") is None:
        out["graphile"] = "node not found on PATH"
    elif not (NODE_DIR / "node_modules" / "graphile-worker").is_dir():
        out["graphile"] = "graphile-worker not installed in bench/node (npm install failed)"
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
        importlib.import_module("procrastinate")
        importlib.import_module("pgqueuer")
    except ImportError:
        log("installing the bench extra (procrastinate, pgqueuer)")
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "-e", f"{ROOT}[bench]"], check=False
        )
        importlib.invalidate_caches()
    if shutil.which("npm") and not (NODE_DIR / "node_modules" / "graphile-worker").is_dir():
        log("installing graphile-worker into bench/node (npm install)")
        subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--silent"], cwd=NODE_DIR, check=False
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
    from pgqueuer import PsycopgDriver, Queries

    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as aconn:
        q = Queries(PsycopgDriver(aconn))
        await q.install()
        # Documented tuning of the queue table's autovacuum (pgqueuer's "autovac" command).
        await q.optimize_autovacuum()


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


def drain_sql_api(url: str, batch: int, wid: str, timings: bool) -> Callable[[], dict[str, Any]]:
    """pgclaim through the SQL API: claim_batch, then complete with the lease tokens."""
    conn = psycopg.connect(url, autocommit=True)
    claim = "select id, lease_token from pgclaim.claim_batch(%s, %s, %s)"
    complete = "select pgclaim.complete(%s, %s, %s)"

    def go() -> dict[str, Any]:
        done = 0
        lat: list[float] = []
        with conn:
            while True:
                t = time.perf_counter()
                rows = conn.execute(claim, (QUEUE, wid, batch)).fetchall()
                if timings:
                    lat.append(time.perf_counter() - t)
                if not rows:
                    break
                ids = [r[0] for r in rows]
                tokens = [r[1] for r in rows]
                done += conn.execute(complete, (wid, ids, tokens)).fetchone()[0]  # type: ignore[index]
        return {"done": done, "claim_latency": lat}

    return go


def drain_raw(url: str, batch: int, wid: str, timings: bool) -> Callable[[], dict[str, Any]]:
    """The raw-SQL ceiling: the bare claim and finish statements on a bare table."""
    conn = psycopg.connect(url, autocommit=True)
    claim = (
        "with c as (select id from bare.raw where status = 'pending' order by id limit %s"
        " for update skip locked) update bare.raw as t set status = 'running' from c"
        " where t.id = c.id returning t.id"
    )
    finish = "update bare.raw set status = 'done' where id = any(%s)"

    def go() -> dict[str, Any]:
        done = 0
        with conn:
            while True:
                ids = [r[0] for r in conn.execute(claim, (batch,)).fetchall()]
                if not ids:
                    break
                done += conn.execute(finish, (ids,)).rowcount
        return {"done": done}

    return go


def drain_worker(url: str, batch: int, wid: str, timings: bool) -> Callable[[], dict[str, Any]]:
    """pgclaim through the Python Worker (its default concurrency), run until the queue is empty."""
    import pgclaim

    client = pgclaim.QueueClient(url)
    wanted = {"batch_size": batch, "install_signals": False, "worker_id": wid}
    params = inspect.signature(pgclaim.Worker).parameters
    worker = pgclaim.Worker(client, QUEUE, _noop,
                            **{k: v for k, v in wanted.items() if k in params})

    def go() -> dict[str, Any]:
        stats = worker.run(until_empty=True)
        client.close()
        return {"done": getattr(stats, "completed", 0)}

    return go


def procrastinate_app(url: str, max_size: int = 3) -> Any:
    """A procrastinate App over psycopg with the no-op tasks registered."""
    import procrastinate

    app = procrastinate.App(connector=procrastinate.PsycopgConnector(
        conninfo=url, min_size=1, max_size=max_size))
    app.task(name="noop", queue=QUEUE)(_noop)
    return app


def _noop(*_args: Any, **_kwargs: Any) -> None:
    return None


def drain_procrastinate(url: str, batch: int, wid: str, timings: bool
                        ) -> Callable[[], dict[str, Any]]:
    """procrastinate: one worker (concurrency 1) that exits once the queue is empty."""
    import logging

    logging.getLogger("procrastinate").setLevel(logging.WARNING)
    app = procrastinate_app(url)

    def go() -> dict[str, Any]:
        async def main() -> None:
            async with app.open_async():
                await app.run_worker_async(
                    queues=[QUEUE], concurrency=1, wait=False, listen_notify=False,
                    install_signal_handlers=False, name=wid)
        asyncio.run(main())
        return {"done": 0}

    return go


def drain_pgqueuer(url: str, batch: int, wid: str, timings: bool) -> Callable[[], dict[str, Any]]:
    """pgqueuer: one QueueManager in drain mode with its batch_size set to the batch."""
    def go() -> dict[str, Any]:
        from pgqueuer import PsycopgDriver, Queries, QueueManager
        from pgqueuer.types import QueueExecutionMode

        async def main() -> None:
            async with await psycopg.AsyncConnection.connect(url, autocommit=True) as aconn:
                qm = QueueManager(Queries(PsycopgDriver(aconn)))

                @qm.entrypoint("noop")
                async def noop(job: Any) -> None:
                    return None

                await qm.run(batch_size=batch, mode=QueueExecutionMode.drain,
                             dequeue_timeout=__import__("datetime").timedelta(seconds=1))
        asyncio.run(main())
        return {"done": 0}

    return go


def run_node_group(url: str, mode: str, n: int, concurrency: int = 1
                   ) -> list[subprocess.Popen[str]]:
    """Starts n graphile-worker node processes and waits until each printed 'ready'."""
    procs = [
        subprocess.Popen(
            ["node", str(NODE_DIR / "driver.js"), mode, url, str(concurrency)],
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


def drain_graphile(url: str, w: int) -> tuple[float, list[float]]:
    """graphile-worker: W node processes, runOnce each; returns wall time and RSS (MB) each."""
    procs = run_node_group(url, "drain", w)
    t0 = time.monotonic()
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    rss: list[float] = []
    for p in procs:
        assert p.stdout is not None
        line = p.stdout.readline().strip()
        if line != "done":
            raise RuntimeError(f"graphile drain failed: {line!r}")
    elapsed = time.monotonic() - t0
    for p in procs:
        rss.append(_rss_of(p.pid))
        p.wait(timeout=30)
    return elapsed, rss


def _rss_of(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float("nan")


# ---------------------------------------------------------------------------- pickup latency


def listen_pgclaim(url: str, wid: str, counter: Any, target: int, poll: float | None
                   ) -> Callable[[], dict[str, Any]]:
    """A pgclaim consumer: LISTEN and claim on each wake-up, or (poll) claim every poll s."""
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
    def lat_task(t: float) -> None:
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
    """A pgqueuer QueueManager (LISTEN on its channel); the entrypoint records the latency."""
    lat: list[float] = []

    def go() -> dict[str, Any]:
        from pgqueuer import PsycopgDriver, Queries, QueueManager

        async def main() -> None:
            async with await psycopg.AsyncConnection.connect(url, autocommit=True) as aconn:
                qm = QueueManager(Queries(PsycopgDriver(aconn)))

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
        asyncio.run(main())
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
    """pgqueuer's producer: Queries.enqueue one at a time, gap seconds apart."""
    from pgqueuer import PsycopgDriver, Queries

    calls: list[float] = []
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as aconn:
        q = Queries(PsycopgDriver(aconn))
        for _ in range(m):
            t_next = time.monotonic() + gap
            t_call = time.perf_counter()
            await q.enqueue("lat", json.dumps({"t": time.time()}).encode())
            calls.append(time.perf_counter() - t_call)
            delay = t_next - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
    return calls
