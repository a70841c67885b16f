"""The chaos harness: the audit tables, worker processes, the workload and the audit itself.

The audit lives in the test database only (schema ``chaos_audit``): the handler's ledger of
side effects, and triggers on ``pgclaim.records`` and ``pgclaim.finished`` that log every
status change with the worker and the lease token of the claim it concerns.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

RUNNER = Path(__file__).resolve().parent / "runner.py"
ROOT = Path(__file__).resolve().parents[3]

AUDIT_SQL = """
create schema chaos_audit;
create table chaos_audit.ledger (
    record_id bigint not null,
    worker_id text not null,
    lease_token bigint,
    at timestamptz not null default clock_timestamp()
);
create table chaos_audit.transitions (
    seq bigserial primary key,
    record_id bigint not null,
    old_status text,
    new_status text not null,
    worker_id text,
    lease_token bigint,
    attempt integer,
    last_error text,
    at timestamptz not null default clock_timestamp()
);
-- Every change of a record's status: an update in pgclaim.records; a record leaving it
-- for pgclaim.finished (completed, failed, cancelled: logged as it arrives there, from
-- the status it last had); a dead letter coming back (retry_failed inserts it into
-- pgclaim.records before it leaves pgclaim.finished).
create function chaos_audit.log_transition() returns trigger
language plpgsql security definer set search_path = pg_catalog, public as $fn$
declare
    v_old text;
begin
    if tg_table_name = 'finished' then
        select t.new_status into v_old from chaos_audit.transitions as t
        where t.record_id = new.id order by t.seq desc limit 1;
        insert into chaos_audit.transitions
            (record_id, old_status, new_status, worker_id, lease_token, attempt, last_error)
        values (new.id, coalesce(v_old, 'pending'), new.status::text, new.worker_id,
            new.lease_token, new.attempt, new.last_error);
        return null;
    end if;
    if tg_op = 'INSERT' then
        select f.status::text into v_old from pgclaim.finished as f where f.id = new.id;
        if found then
            insert into chaos_audit.transitions
                (record_id, old_status, new_status, worker_id, lease_token, attempt, last_error)
            values (new.id, v_old, new.status::text, null, null, new.attempt, new.last_error);
        end if;
        return null;
    end if;
    insert into chaos_audit.transitions
        (record_id, old_status, new_status, worker_id, lease_token, attempt, last_error)
    values (new.id, old.status::text, new.status::text,
        case when new.status = 'running' then new.worker_id else old.worker_id end,
        case when new.status = 'running' then new.lease_token else old.lease_token end,
        new.attempt, new.last_error);
    return null;
end;
$fn$;
-- A handler whose payload has "gate" waits until a row is here (ChaosRun.open_gate).
create table chaos_audit.gate (opened_at timestamptz not null default clock_timestamp());
-- The naive engine's first read of each worker, met before any of them writes.
create table chaos_audit.rendezvous (worker_id text not null);
create trigger chaos_audit_transitions after update of status on pgclaim.records
for each row when (old.status is distinct from new.status)
execute function chaos_audit.log_transition();
create trigger chaos_audit_retried after insert on pgclaim.records
for each row execute function chaos_audit.log_transition();
create trigger chaos_audit_finished after insert on pgclaim.finished
for each row execute function chaos_audit.log_transition();
"""


def install_audit(dsn: str) -> None:
    """Installs the ledger and the transition log into the test database."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(AUDIT_SQL)


@dataclass
class KillEvent:
    """A worker that lost ownership at ``at`` (epoch seconds) of the records in ``held``."""

    at: float
    worker: str
    held: list[tuple[int, int]]
    how: str


@dataclass
class AuditResult:
    """What the audit found; ``violations`` lists every broken promise in words."""

    records: int
    lost: int
    completed_twice: int
    handled_twice: int
    allowed_twice: int | None
    failed: int
    recovery_s: float | None
    orphan_max_s: float | None
    orphan_bound_s: float | None
    violations: list[str] = field(default_factory=list)

    def row(self, fault: str) -> dict[str, Any]:
        """One row of the reliability table."""
        return {"fault": fault, "records": self.records, "lost": self.lost,
                "completed_twice": self.completed_twice, "handled_twice": self.handled_twice,
                "recovery_s": self.recovery_s, "orphan_max_s": self.orphan_max_s,
                "ok": not self.violations}


class WorkerProc:
    """One runner process."""

    def __init__(self, popen: subprocess.Popen[bytes], label: str, events: Path) -> None:
        self.popen = popen
        self.label = label
        self.events_path = events

    @property
    def pid(self) -> int:
        """The process id."""
        return self.popen.pid

    def alive(self) -> bool:
        """True while the process runs."""
        return self.popen.poll() is None

    def events(self) -> list[dict[str, Any]]:
        """Every event the process wrote."""
        out = []
        with contextlib.suppress(FileNotFoundError):
            for line in self.events_path.read_text().splitlines():
                with contextlib.suppress(json.JSONDecodeError):
                    out.append(json.loads(line))
        return out

    def worker_id(self, timeout: float = 15.0) -> str:
        """The worker id the process registered under (from its ``started`` event)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for e in self.events():
                if e["ev"] == "started" and e.get("worker_id"):
                    return str(e["worker_id"])
            time.sleep(0.05)
        raise TimeoutError(f"{self.label} did not start")

    def signal(self, sig: int) -> None:
        """Sends ``sig`` to the process (ignored when it is gone)."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, sig)

    def stop(self, timeout: float = 8.0) -> None:
        """SIGCONT (in case it is paused), SIGTERM, then SIGKILL after ``timeout``."""
        if not self.alive():
            return
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            self.popen.wait(5)


class ChaosRun:
    """One row of the matrix: a queue, worker processes, a workload, the audit.

    ``dsn`` is the direct URL of the test database (the audit and the producer use it);
    the workers get ``worker_dsn`` (e.g. through a fault proxy) and write their ledger
    through ``ledger_dsn`` (direct unless told otherwise).
    """

    def __init__(self, dsn: str, *, engine: str, queue: str = "chaos", lease: float = 2.0,
                 max_attempts: int = 5, poll: float = 0.2, worker_timeout: float = 60.0,
                 audit: bool = True) -> None:
        self.dsn = dsn
        self.engine = engine
        self.queue = queue
        self.lease = lease
        self.poll = poll
        self.workers: list[WorkerProc] = []
        self.kills: list[KillEvent] = []
        self.tmp = Path(tempfile.mkdtemp(prefix="pgclaim-chaos-run-"))
        self._n = 0
        if audit:
            install_audit(dsn)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(
                "select pgclaim.create_queue(queue => %s, lease => %s * interval '1 second',"
                " max_attempts => %s, backoff_base => interval '10 milliseconds',"
                " backoff_max => interval '100 milliseconds')", (queue, lease, max_attempts))
            conn.execute("select pgclaim.configure(worker_timeout => %s * interval '1 second',"
                         " sweep_limit => 100)", (worker_timeout,))

    # -- producing ---------------------------------------------------------------------

    def enqueue(self, n: int, payload: Callable[[int], dict[str, Any]] | None = None) -> list[int]:
        """Adds ``n`` records (directly, never through a fault) and returns their ids."""
        make = payload or (lambda i: {"n": i})
        payloads = [Jsonb(make(i)) for i in range(n)]
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            rows = conn.execute(
                "select id from pgclaim.enqueue_batch(queue => %s, payloads => %s::jsonb[]) as id",
                (self.queue, payloads)).fetchall()
        return [int(r[0]) for r in rows]

    # -- workers -----------------------------------------------------------------------

    def start_workers(self, count: int, *, worker_dsn: str | None = None,
                      ledger_dsn: str | None = None, prefix: Sequence[str] = (),
                      preexec: Callable[[], None] | None = None,
                      wait_started: bool = True, **opts: Any) -> list[WorkerProc]:
        """Starts ``count`` runner processes; ``opts`` become runner flags."""
        started = []
        for _ in range(count):
            self._n += 1
            label = f"w{self._n}"
            events = self.tmp / f"{label}.jsonl"
            flags = {"engine": self.engine, "lease": self.lease, "poll": self.poll, **opts}
            cmd = [*prefix, sys.executable, str(RUNNER), "--dsn", worker_dsn or self.dsn,
                   "--ledger-dsn", ledger_dsn or self.dsn, "--queue", self.queue,
                   "--label", label, "--events", str(events)]
            for key, value in flags.items():
                if value is not None:
                    cmd += [f"--{key.replace('_', '-')}", str(value)]
            env = {**os.environ, "PYTHONPATH": str(ROOT / "client")}
            log = open(self.tmp / f"{label}.log", "wb")  # noqa: SIM115
            popen = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                                     preexec_fn=preexec)  # noqa: PLW1509 (cgroup join)
            log.close()
            started.append(WorkerProc(popen, label, events))
        self.workers += started
        if wait_started:
            for w in started:
                w.worker_id()
        return started

    def held_by(self, worker_id: str) -> list[tuple[int, int]]:
        """The (record id, lease token) pairs ``worker_id`` holds now."""
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            rows = conn.execute(
                "select id, lease_token from public.every_record where status = 'running'"
                " and worker_id = %s", (worker_id,)).fetchall()
        return [(int(a), int(b)) for a, b in rows]

    def running(self) -> int:
        """How many records are held right now, by anyone."""
        return int(self.scalar("select count(*) from public.every_record where status = 'running'"))

    def in_flight_at(self, at: float) -> int:
        """Records claimed before ``at`` (epoch seconds) whose claim had not ended by then,
        read from the transition log (exact even when the database died at ``at``)."""
        return int(self.scalar(
            "select count(distinct t.record_id) from chaos_audit.transitions as t"
            " where t.new_status = 'running' and t.at <= to_timestamp(%s)"
            " and not exists (select 1 from chaos_audit.transitions as u"
            " where u.record_id = t.record_id and u.lease_token = t.lease_token"
            " and u.old_status = 'running' and u.at <= to_timestamp(%s))", (at, at)))

    def kill(self, w: WorkerProc, sig: int = signal.SIGKILL, how: str = "SIGKILL") -> KillEvent:
        """Sends ``sig`` to a worker and notes what it held at that moment."""
        wid = w.worker_id()
        if sig == signal.SIGSTOP:
            w.signal(sig)
            time.sleep(0.05)
            held = self.held_by(wid)
            ev = KillEvent(time.time(), wid, held, how)
        else:
            w.signal(signal.SIGSTOP)  # freeze it, read what it holds, then kill it
            time.sleep(0.05)
            held = self.held_by(wid)
            ev = KillEvent(time.time(), wid, held, how)
            w.signal(sig)
            w.signal(signal.SIGCONT)
        self.kills.append(ev)
        return ev

    def self_kills(self) -> list[KillEvent]:
        """The ``dying`` events of workers that killed themselves at a step."""
        out = []
        for w in self.workers:
            for e in w.events():
                if e["ev"] == "dying":
                    held = [(int(a), int(b)) for a, b in e["held"]]
                    out.append(KillEvent(e["t"], w.worker_id(), held, e["step"]))
        return out

    def stop_all(self) -> None:
        """Stops every worker (SIGTERM, then SIGKILL)."""
        for w in self.workers:
            with contextlib.suppress(Exception):
                if w.alive():
                    w.signal(signal.SIGCONT)
                    w.signal(signal.SIGTERM)
        for w in self.workers:
            with contextlib.suppress(Exception):
                w.stop()

    def logs(self) -> str:
        """The tail of every worker's output (for failure messages)."""
        parts = []
        for w in self.workers:
            path = self.tmp / f"{w.label}.log"
            with contextlib.suppress(OSError):
                text = path.read_text(errors="replace")[-1500:]
                if text.strip():
                    parts.append(f"--- {w.label} (rc={w.popen.poll()})\n{text}")
        return "\n".join(parts)

    def open_gate(self) -> None:
        """Lets every handler waiting on a ``gate`` payload finish."""
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute("insert into chaos_audit.gate default values")

    # -- waiting -----------------------------------------------------------------------

    def scalar(self, query: str, params: Sequence[Any] = ()) -> Any:
        """One value from the test database (a fresh direct connection)."""
        with psycopg.connect(self.dsn, autocommit=True, connect_timeout=5) as conn:
            row = conn.execute(query, params).fetchone()
        return row[0] if row else None

    def unfinished(self) -> int:
        """Records not yet in a final state."""
        return int(self.scalar(
            "select count(*) from public.every_record where queue = %s"
            " and status in ('pending', 'running')", (self.queue,)))

    def completed(self) -> int:
        """Records completed so far."""
        return int(self.scalar(
            "select count(*) from public.every_record where queue = %s and status = 'completed'",
            (self.queue,)))

    def wait_until(self, cond: Callable[[], bool], timeout: float, what: str = "") -> bool:
        """Polls ``cond`` every 50 ms for ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(psycopg.OperationalError):
                if cond():
                    return True
            time.sleep(0.05)
        return False

    def wait_done(self, timeout: float = 60.0, *,
                  restart: dict[str, Any] | Callable[[WorkerProc], object] | None = None,
                  ) -> bool:
        """Waits until no record is pending or running; with ``restart``, dead workers are
        replaced, as a container orchestrator would: started with the flags ``restart``
        holds, or by ``restart(dead_worker)`` itself."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(psycopg.OperationalError):
                if self.unfinished() == 0:
                    return True
            if restart is not None:
                for w in list(self.workers):
                    if not w.alive() and not getattr(w, "replaced", False):
                        w.replaced = True  # type: ignore[attr-defined]
                        if callable(restart):
                            restart(w)
                        else:
                            self.start_workers(1, wait_started=False, **restart)
            time.sleep(0.1)
        return False

    # -- the audit ---------------------------------------------------------------------

    def audit(self, *, expect_failed: Sequence[int] = (), allowed_twice: int | None = 0,
              fault_end: float | None = None, orphan_bound: float | None = None,
              structural: bool = True) -> AuditResult:
        """Checks the guarantee over the whole run (see docs/reliability.md)."""
        violations: list[str] = []
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            statuses = dict(conn.execute(
                "select id, status::text from public.every_record where queue = %s",
                (self.queue,)).fetchall())
            completions = conn.execute(
                "select record_id, lease_token, extract(epoch from at)::float8"
                " from chaos_audit.transitions where old_status = 'running'"
                " and new_status = 'completed' order by seq").fetchall()
            ledger = conn.execute(
                "select record_id, lease_token from chaos_audit.ledger").fetchall()
            lost_owner = conn.execute(
                "select record_id, lease_token, extract(epoch from at)::float8, new_status"
                " from chaos_audit.transitions where old_status = 'running'"
                " and new_status in ('pending', 'failed') order by seq").fetchall()
        expect_failed_set = set(expect_failed)
        lost = [i for i, s in statuses.items()
                if (s != "failed" if i in expect_failed_set else s != "completed")]
        if lost:
            violations.append(f"{len(lost)} record(s) not finished as expected, e.g. "
                              f"{[(i, statuses[i]) for i in lost[:5]]}")
        per_record: dict[int, int] = {}
        completing_token: dict[int, int] = {}
        for rid, token, _ in completions:
            per_record[rid] = per_record.get(rid, 0) + 1
            completing_token[rid] = token
        twice_completed = [r for r, c in per_record.items() if c > 1]
        if twice_completed:
            violations.append(f"{len(twice_completed)} record(s) completed twice, e.g. "
                              f"{twice_completed[:5]}")
        tokens: dict[int, set[int]] = {}
        for rid, token in ledger:
            tokens.setdefault(rid, set()).add(token)
        handled_twice = [r for r, t in tokens.items() if len(t) > 1]
        if allowed_twice is not None and len(handled_twice) > allowed_twice:
            violations.append(f"{len(handled_twice)} record(s) handled twice, more than the "
                              f"{allowed_twice} in flight on the faulted workers")
        if structural:
            released = {(r, t) for r, t, _, _ in lost_owner}
            unexplained = [r for r in handled_twice
                           if any((r, t) not in released
                                  for t in tokens[r] if t != completing_token.get(r))]
            if unexplained:
                violations.append(f"{len(unexplained)} record(s) handled twice although the "
                                  f"first handler kept ownership, e.g. {unexplained[:5]}")
            no_effect = [r for r, t in completing_token.items()
                         if t not in tokens.get(r, set())]
            if no_effect:
                violations.append(f"{len(no_effect)} completion(s) without a side effect under "
                                  f"their claim, e.g. {no_effect[:5]}")
        orphan_max = None
        kills = self.kills + self.self_kills()
        if kills:
            back: dict[tuple[int, int], float] = {}
            for rid, token, at, _ in lost_owner:
                back.setdefault((rid, token), at)
            for rid, token, at in completions:
                back.setdefault((rid, token), at)
            waits = []
            for k in kills:
                for rid, token in k.held:
                    if (rid, token) in back:
                        waits.append(max(0.0, back[(rid, token)] - k.at))
            orphan_max = round(max(waits), 2) if waits else None
            if orphan_bound is not None and orphan_max is not None and orphan_max > orphan_bound:
                violations.append(f"an orphan came back after {orphan_max:.2f}s, more than "
                                  f"{orphan_bound:.2f}s")
        recovery = None
        if fault_end is not None:
            later = [at for _, _, at in completions if at >= fault_end]
            recovery = round(min(later) - fault_end, 2) if later else None
            if recovery is None:
                violations.append("no record completed after the fault ended")
        return AuditResult(
            records=len(statuses), lost=len(lost), completed_twice=len(twice_completed),
            handled_twice=len(handled_twice), allowed_twice=allowed_twice,
            failed=sum(1 for s in statuses.values() if s == "failed"),
            recovery_s=recovery, orphan_max_s=orphan_max, orphan_bound_s=orphan_bound,
            violations=violations)

    def close(self) -> None:
        """Stops every worker and removes the run's files."""
        self.stop_all()
        import shutil
        shutil.rmtree(self.tmp, ignore_errors=True)
