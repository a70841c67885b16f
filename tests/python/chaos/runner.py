"""One worker process of the chaos suite: a QueueClient, a worker loop, a ledger handler.

Run as ``python runner.py --dsn URL --ledger-dsn URL --queue Q --label w1 --events FILE``.
Each handled record writes one ledger row ``(record_id, worker_id, lease_token, at)`` through
its own connection (``--ledger-dsn``, never faulted) before the worker completes it.

Engines:

* ``worker``: ``pgclaim.Worker`` (the product's worker loop);
* ``client``: a plain loop over ``QueueClient`` calls (claim, handle, complete with the lease
  tokens, heartbeat thread), the shape any language's client has;
* ``naive``: a deliberately broken claim (read pending ids, then mark them, without ``FOR UPDATE
  SKIP LOCKED`` and without a status or holder check): the negative control.

``--die-at STEP`` makes the process SIGKILL itself at one step of the N-th record batch
(``before_claim``, ``after_claim``, ``after_effect``, ``during_complete``), after writing a
``dying`` event that names the records it holds. Events are JSON lines in ``--events``.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from datetime import timedelta
from typing import Any

import psycopg

EVENTS: Any = None
HELD: dict[int, int] = {}
HELD_LOCK = threading.Lock()


def event(kind: str, **fields: Any) -> None:
    """Appends one JSON line to the events file (flushed at once: the process may die)."""
    if EVENTS is None:
        return
    line = json.dumps({"t": time.time(), "ev": kind, "pid": os.getpid(), **fields}, default=str)
    with HELD_LOCK:
        EVENTS.write(line + "\n")
        EVENTS.flush()


def die(step: str) -> None:
    """Records what this process holds, then SIGKILLs itself."""
    with HELD_LOCK:
        held = dict(HELD)
    event("dying", step=step, held=[[k, v] for k, v in held.items()])
    os.kill(os.getpid(), signal.SIGKILL)


class Ledger:
    """The side effect: one row per handling, through a connection of its own per thread."""

    def __init__(self, dsn: str, worker_id: str) -> None:
        self.dsn = dsn
        self.worker_id = worker_id
        self.local = threading.local()

    def gate_open(self) -> bool:
        """True once the test opened the gate (a row in ``chaos_audit.gate``)."""
        conn = getattr(self.local, "conn", None)
        if conn is None or conn.closed:
            conn = psycopg.connect(self.dsn, autocommit=True, connect_timeout=3)
            self.local.conn = conn
        return conn.execute("select 1 from chaos_audit.gate limit 1").fetchone() is not None

    def write(self, record_id: int, lease_token: int | None) -> None:
        """Writes the ledger row, retrying until the audit database takes it."""
        deadline = time.monotonic() + 120
        while True:
            try:
                conn = getattr(self.local, "conn", None)
                if conn is None or conn.closed:
                    conn = psycopg.connect(self.dsn, autocommit=True, connect_timeout=3)
                    self.local.conn = conn
                conn.execute(
                    "insert into chaos_audit.ledger (record_id, worker_id, lease_token)"
                    " values (%s, %s, %s)", (record_id, self.worker_id, lease_token))
                return
            except psycopg.Error as exc:
                self.local.conn = None
                if time.monotonic() > deadline:
                    raise
                event("ledger_retry", error=str(exc)[:200])
                time.sleep(0.2)


class Handler:
    """The test handler: optional memory use and sleep, then the ledger row."""

    def __init__(self, ledger: Ledger, args: argparse.Namespace) -> None:
        self.ledger = ledger
        self.args = args
        self.effects = 0

    def __call__(self, record: Any) -> None:
        payload = record.payload if isinstance(record.payload, dict) else {}
        alloc = int(payload.get("alloc_mb", 0))
        if alloc:
            event("alloc", id=record.id, mb=alloc)
            hog = bytearray(alloc * 1024 * 1024)
            for i in range(0, len(hog), 4096):
                hog[i] = 1
        if payload.get("gate"):
            deadline = time.monotonic() + 120
            while not self.ledger.gate_open():
                if time.monotonic() > deadline:
                    raise TimeoutError("the gate was never opened")
                time.sleep(0.02)
        time.sleep(float(payload.get("sleep", self.args.sleep)))
        self.ledger.write(record.id, record.lease_token)
        self.effects += 1
        if self.args.die_at == "after_effect" and self.effects >= self.args.die_after:
            die("after_effect")


def patch_client(args: argparse.Namespace) -> None:
    """Wraps QueueClient.claim/complete to record events and to die at the asked step."""
    from pgclaim import QueueClient

    claim, complete = QueueClient.claim, QueueClient.complete
    calls = {"claim": 0, "batches": 0, "complete": 0}

    def claim_hook(self: Any, *a: Any, **kw: Any) -> Any:
        calls["claim"] += 1
        if args.die_at == "before_claim" and calls["claim"] >= args.die_after:
            die("before_claim")
        rows = claim(self, *a, **kw)
        if rows:
            calls["batches"] += 1
            with HELD_LOCK:
                HELD.update({r.id: r.lease_token for r in rows})
            event("claimed", ids=[r.id for r in rows], token=rows[0].lease_token)
            if args.die_at == "after_claim" and calls["batches"] >= args.die_after:
                die("after_claim")
        return rows

    def complete_hook(self: Any, worker_id: str, ids: Any, lease_tokens: Any = None,
                      **kw: Any) -> Any:
        calls["complete"] += 1
        ids = list(ids)
        if args.die_at == "during_complete" and calls["complete"] >= args.die_after:
            threading.Timer(0.001, die, ("during_complete",)).start()
        try:
            done = complete(self, worker_id, ids, lease_tokens, **kw)
        except Exception as exc:
            event("complete_error", ids=ids, error=f"{type(exc).__name__}: {exc}"[:300])
            raise
        with HELD_LOCK:
            for i in ids:
                HELD.pop(i, None)
        event("complete", asked=len(ids), done=done, ids=ids,
              tokens=None if lease_tokens is None else list(lease_tokens))
        return done

    QueueClient.claim = claim_hook  # type: ignore[method-assign]
    QueueClient.complete = complete_hook  # type: ignore[method-assign]


def make_client(args: argparse.Namespace) -> Any:
    """The QueueClient every engine but ``naive`` uses, with the suite's timeouts."""
    from pgclaim import QueueClient
    from pgclaim.retry import RetryPolicy

    return QueueClient(
        args.dsn, retry=RetryPolicy(attempts=8, base=0.05, cap=1.0, deadline=10.0),
        connect_timeout=args.connect_timeout, statement_timeout=args.statement_timeout,
        tcp_user_timeout=args.tcp_user_timeout, keepalives_idle=2, keepalives_interval=1,
        keepalives_count=3, pool_timeout=args.pool_timeout, max_size=args.pool_size,
        reconnect_timeout=3600.0)


STOP = threading.Event()


def run_client_loop(args: argparse.Namespace, worker_id: str, handler: Handler) -> None:
    """The plain loop: claim a batch, handle each record, complete them with their tokens."""
    from pgclaim import PgclaimError

    client = make_client(args)
    lease = timedelta(seconds=args.lease)

    def beat() -> None:
        while not STOP.wait(args.heartbeat_every):
            try:
                client.heartbeat(worker_id)
            except PgclaimError as exc:
                event("heartbeat_error", error=str(exc)[:200])

    threading.Thread(target=beat, daemon=True).start()
    last_reclaim = 0.0
    while not STOP.is_set():
        try:
            if time.monotonic() - last_reclaim > args.reclaim_every:
                last_reclaim = time.monotonic()
                client.reclaim_orphans(1000)
            batch = client.claim(args.queue, worker_id, args.batch_size, lease)
        except PgclaimError as exc:
            event("claim_error", error=f"{type(exc).__name__}: {exc}"[:200])
            STOP.wait(args.poll)
            continue
        if not batch:
            STOP.wait(args.poll)
            continue
        done: list[Any] = []
        for record in batch:
            try:
                handler(record)
                done.append(record)
            except Exception as exc:  # noqa: BLE001 - a handler's failure fails its record
                try:
                    client.fail(worker_id, record.id, str(exc)[:200],
                                lease_token=record.lease_token)
                except PgclaimError as err:
                    event("fail_error", error=str(err)[:200])
        deadline = time.monotonic() + args.lease * 3
        while done:
            try:
                client.complete(worker_id, [r.id for r in done], [r.lease_token for r in done])
                break
            except PgclaimError:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.1)
    client.close()


def run_worker(args: argparse.Namespace, worker_id: str, handler: Handler) -> None:
    """The product's worker loop, ``pgclaim.Worker``."""
    import pgclaim

    client = make_client(args)
    worker = pgclaim.Worker(
        client, args.queue, handler, concurrency=args.concurrency,
        batch_size=args.batch_size, lease=timedelta(seconds=args.lease),
        heartbeat_every=args.heartbeat_every, poll_interval=args.poll,
        reclaim_every=args.reclaim_every, grace=5.0, worker_id=worker_id)
    event("started", worker_id=worker.worker_id)
    worker.run()
    client.close()


def run_naive(args: argparse.Namespace, worker_id: str, handler: Handler) -> None:
    """The negative control: a claim without SKIP LOCKED, without status or holder checks."""

    class Rec:
        def __init__(self, id: int, payload: Any, token: int) -> None:
            self.id, self.payload, self.lease_token = id, payload, token

    with psycopg.connect(args.dsn, autocommit=True) as conn:
        first = True
        while not STOP.is_set():
            rows = conn.execute(
                "select id, payload from public.every_record where queue = %s"
                " and status = 'pending' order by id limit %s",
                (args.queue, args.batch_size)).fetchall()
            if not rows:
                STOP.wait(args.poll)
                continue
            if first and args.rendezvous:
                # The gap a naive read-then-write leaves open, made certain: no worker
                # writes before all of them have read (the same pending records).
                first = False
                conn.execute("insert into chaos_audit.rendezvous values (%s)", (worker_id,))
                deadline = time.monotonic() + 120
                while conn.execute("select count(*) from chaos_audit.rendezvous"
                                   ).fetchone()[0] < args.rendezvous:
                    if time.monotonic() > deadline:
                        raise TimeoutError("the other naive workers never came")
                    time.sleep(0.02)
            time.sleep(0.01)  # the gap a naive read-then-write leaves open
            token = conn.execute("select pgclaim._lease_token()").fetchone()[0]
            ids = [r[0] for r in rows]
            conn.execute(
                "update pgclaim.records set status = 'running', worker_id = %s,"
                " lease_token = %s, attempt = attempt + 1 where id = any(%s)",
                (worker_id, token, ids))
            for rid, payload in rows:
                handler(Rec(rid, payload, token))
            # finished as pgclaim finishes a record (moved to pgclaim.finished), minus the checks
            conn.execute(
                "with d as (delete from pgclaim.records where id = any(%s) returning *)"
                " insert into pgclaim.finished (id, queue, status, priority, run_at, payload,"
                " attempt, max_attempts, dedup_key, worker_id, lease_token, lease_for,"
                " enqueued_at, finished_at) select id, queue, 'completed', priority, run_at,"
                " payload, attempt, max_attempts, dedup_key, worker_id, lease_token, lease_for,"
                " enqueued_at, now() from d", (ids,))


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    global EVENTS
    p = argparse.ArgumentParser()
    p.add_argument("--dsn", required=True)
    p.add_argument("--ledger-dsn", required=True)
    p.add_argument("--queue", required=True)
    p.add_argument("--label", required=True)
    p.add_argument("--events", required=True)
    p.add_argument("--engine", default="client", choices=("worker", "client", "naive"))
    p.add_argument("--concurrency", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=5)
    p.add_argument("--lease", type=float, default=2.0)
    p.add_argument("--heartbeat-every", type=float, default=0.5)
    p.add_argument("--poll", type=float, default=0.2)
    p.add_argument("--reclaim-every", type=float, default=1.0)
    p.add_argument("--sleep", type=float, default=0.01)
    p.add_argument("--die-at", default=None,
                   choices=(None, "before_claim", "after_claim", "after_effect",
                            "during_complete"))
    p.add_argument("--die-after", type=int, default=1)
    p.add_argument("--rendezvous", type=int, default=0,
                   help="naive engine: wait after the first read until this many workers read")
    p.add_argument("--connect-timeout", type=int, default=3)
    p.add_argument("--statement-timeout", type=float, default=5.0)
    p.add_argument("--tcp-user-timeout", type=float, default=5.0)
    p.add_argument("--pool-timeout", type=float, default=5.0)
    p.add_argument("--pool-size", type=int, default=4)
    args = p.parse_args(argv)
    EVENTS = open(args.events, "a", buffering=1)  # noqa: SIM115
    worker_id = f"{args.label}:{os.getpid()}"
    handler = Handler(Ledger(args.ledger_dsn, worker_id), args)
    if args.engine != "worker":
        signal.signal(signal.SIGTERM, lambda *_: STOP.set())
        signal.signal(signal.SIGINT, lambda *_: STOP.set())
        event("started", worker_id=worker_id)
    if args.engine != "naive":
        patch_client(args)
    if args.engine == "worker":
        run_worker(args, worker_id, handler)
    elif args.engine == "client":
        run_client_loop(args, worker_id, handler)
    else:
        run_naive(args, worker_id, handler)
    event("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
