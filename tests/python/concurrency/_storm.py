"""Shared code of the concurrency tests: claim-storm processes, the claim ledger, the
record-history trigger, the checkers that read them, and deliberately broken functions
(mutants) that the checkers must catch.

Everything here talks to a real PostgreSQL database through psycopg; the ledger and the
history are tables of the test database only, written by the claimers and by a trigger on
``pgclaim.records``, so that the checks do not trust pgclaim's own bookkeeping.
"""
from __future__ import annotations

import math
import multiprocessing
import random
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from pgdb import ROOT

# --------------------------------------------------------------------------- ledger

LEDGER_DDL = """
create table public.storm_ledger (
    record_id bigint not null,
    worker_id text not null,
    lease_token bigint not null,
    claimed_at timestamptz not null,
    batch_no integer not null,
    position integer not null,
    lease_until timestamptz not null,
    priority integer not null,
    run_at timestamptz not null
)
"""

# One statement, so one transaction: the claim and its ledger rows commit together.
CLAIM_WITH_LEDGER = """
with c as materialized (
    select * from pgclaim.claim_batch(%(queue)s, %(worker)s, %(size)s, %(lease)s)
        with ordinality
), l as (
    insert into public.storm_ledger (
        record_id, worker_id, lease_token, claimed_at, batch_no, position,
        lease_until, priority, run_at
    )
    select c.id, %(worker)s, c.lease_token, pg_catalog.clock_timestamp(), %(batch)s,
        c.ordinality, c.lease_until, c.priority, c.run_at
    from c
)
select c.id, c.lease_token from c order by c.ordinality
"""


def install_ledger(conn: psycopg.Connection[Any]) -> None:
    """Creates the claim ledger table in the test database."""
    conn.execute(LEDGER_DDL)


def draw_batch_size(rng: random.Random, upper: int) -> int:
    """A batch size from 1 to ``upper``, log-uniform so that small and large batches mix."""
    return max(1, min(upper, int(math.exp(rng.uniform(0.0, math.log(upper + 1))))))


@dataclass
class StormResult:
    """What one storm process did."""

    worker_id: str
    claims: int = 0
    claimed: int = 0
    completed: int = 0
    max_batch_seen: int = 0
    oversized: list[tuple[int, int]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    deadlocks: int = 0


def storm_worker(
    dsn: str,
    queue: str,
    worker_id: str,
    seed: int,
    max_batch: int,
    start: Any,
    results: Any,
    lease: str | None = None,
    first_round: Any = None,
    first_max: int = 1,
) -> None:
    """One claiming process: claims with ledger until the queue is empty, completes each
    batch under its lease tokens, and puts a :class:`StormResult` on ``results``.

    With ``first_round`` (a barrier of all the processes), the first claim asks for at most
    ``first_max`` records and the process holds them, uncompleted, until every process has
    made its first claim: all of them claim at once and each takes part, whatever the
    scheduler does."""
    res = StormResult(worker_id)
    rng = random.Random(seed)
    try:
        with psycopg.connect(dsn, autocommit=True, application_name=worker_id) as conn:
            start.wait(timeout=120)
            batch_no = 0
            while True:
                size = draw_batch_size(rng, max_batch)
                if first_round is not None and batch_no == 0:
                    size = min(size, first_max)
                params = {"queue": queue, "worker": worker_id, "size": size,
                          "batch": batch_no, "lease": lease}
                rows = _execute(res, conn, CLAIM_WITH_LEDGER, params)
                res.claims += 1
                if len(rows) > size:
                    res.oversized.append((size, len(rows)))
                res.max_batch_seen = max(res.max_batch_seen, len(rows))
                if first_round is not None and batch_no == 0:
                    first_round.wait(timeout=120)
                if not rows:
                    break
                batch_no += 1
                res.claimed += len(rows)
                ids = [r[0] for r in rows]
                tokens = [r[1] for r in rows]
                (done,) = _execute(
                    res, conn, "select pgclaim.complete(%s, %s, %s)", (worker_id, ids, tokens))
                res.completed += int(done[0])
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which fails the test
        res.errors.append(f"{type(exc).__name__}: {exc}")
        for barrier in (start, first_round):
            if barrier is not None:
                barrier.abort()  # the others stop waiting for this process
    results.put(res)


def _execute(res: StormResult, conn: psycopg.Connection[Any], query: str,
             params: Any) -> list[Any]:
    """Runs ``query`` and returns its rows, retrying a deadlock (40P01) as the client does,
    and counts it. Only a broken claim (two holders of one record) can make storm
    processes deadlock."""
    for attempt in range(10):
        try:
            return conn.execute(query, params).fetchall()
        except psycopg.errors.DeadlockDetected:
            res.deadlocks += 1
            if attempt == 9:
                raise
    raise AssertionError("unreachable")


def run_storm(
    dsn: str, queue: str, processes: int, max_batch: int, seed: int = 1,
    lease: str | None = None, timeout: float = 600.0,
) -> list[StormResult]:
    """Starts ``processes`` spawned OS processes that drain ``queue`` at once.

    Their first claims form one round: together they ask for at most the records pending
    now, and none completes before all have claimed, so every process gets records."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("select count(*) from public.every_record where queue = %s"
                           " and status = 'pending'", (queue,)).fetchone()
    first_max = max(1, int(row[0]) // processes) if row else 1
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(processes)
    first_round = ctx.Barrier(processes)
    results = ctx.Queue()
    procs = [
        ctx.Process(
            target=storm_worker,
            args=(dsn, queue, f"storm-{i}", seed * 1000 + i, max_batch, start, results, lease,
                  first_round, first_max),
        )
        for i in range(processes)
    ]
    for p in procs:
        p.start()
    out: list[StormResult] = []
    deadline = time.monotonic() + timeout
    for _ in procs:
        out.append(results.get(timeout=max(1.0, deadline - time.monotonic())))
    for p in procs:
        p.join(timeout=30)
    return out


@dataclass
class LedgerReport:
    """What the ledger says about a storm: every list empty means no violation."""

    claims: int
    double_claims: list[tuple[int, str, str]]
    lost: list[int]
    unfinished: list[int]
    disorder: list[tuple[str, int]]
    unordered_ids: list[tuple[str, int]]

    @property
    def ok(self) -> bool:
        """True when the ledger shows no violation at all."""
        return not (self.double_claims or self.lost or self.unfinished or self.disorder
                    or self.unordered_ids)


def check_ledger(conn: psycopg.Connection[Any], queue: str, expected: Sequence[int]) -> LedgerReport:
    """Reads the ledger and the records table after a storm.

    - double claims: a record claimed again while an earlier claim's lease was still live
      (in a storm nothing is released or failed, so any second live claim is a violation);
    - lost: an expected record that is gone or that nobody ever claimed;
    - unfinished: a record of the queue that is not completed;
    - disorder: a batch not in (priority desc, run_at, id) order;
    - unordered ids: with a single priority and run_at per id range, a batch whose ids are
      not ascending.
    """
    double = conn.execute(
        """
        select a.record_id, a.worker_id, b.worker_id from public.storm_ledger as a
        join public.storm_ledger as b
          on b.record_id = a.record_id
         and (b.claimed_at, b.lease_token) > (a.claimed_at, a.lease_token)
         and b.claimed_at < a.lease_until
        order by 1
        """
    ).fetchall()
    lost = conn.execute(
        """
        select e.id from pg_catalog.unnest(%s::bigint[]) as e (id)
        where not exists (select from public.storm_ledger as l where l.record_id = e.id)
           or not exists (select from public.every_record as r where r.id = e.id)
        order by 1
        """,
        (list(expected),),
    ).fetchall()
    unfinished = conn.execute(
        "select r.id from public.every_record as r where r.queue = %s and r.status <> 'completed'"
        " order by 1",
        (queue,),
    ).fetchall()
    rows = conn.execute(
        "select worker_id, batch_no, position, priority, run_at, record_id"
        " from public.storm_ledger order by worker_id, batch_no, position"
    ).fetchall()
    batches: dict[tuple[str, int], list[tuple[int, datetime, int]]] = defaultdict(list)
    for worker, batch, _pos, prio, run_at, rid in rows:
        batches[(worker, batch)].append((-prio, run_at, rid))
    disorder = [k for k, v in batches.items() if v != sorted(v)]
    unordered_ids = [
        k for k, v in batches.items()
        if len({p for p, _, _ in v}) == 1 and [i for _, _, i in v] != sorted(i for _, _, i in v)
    ]
    return LedgerReport(
        claims=len(rows),
        double_claims=[(r[0], r[1], r[2]) for r in double],
        lost=[r[0] for r in lost],
        unfinished=[r[0] for r in unfinished],
        disorder=disorder,
        unordered_ids=unordered_ids,
    )


def fill_queue(
    conn: psycopg.Connection[Any], queue: str, count: int, chunk: int = 5000,
    priorities: Sequence[int] = (0,),
) -> list[int]:
    """Enqueues ``count`` records (in enqueue_batch chunks) due now; returns their ids."""
    ids: list[int] = []
    n = 0
    while n < count:
        k = min(chunk, count - n)
        prio = priorities[(n // chunk) % len(priorities)]
        payloads = [psycopg.types.json.Jsonb({"n": n + i}) for i in range(k)]
        ids += [r[0] for r in conn.execute(
            "select pgclaim.enqueue_batch(%s, %s, %s, pgclaim._now() - interval '1 hour')",
            (queue, payloads, prio),
        ).fetchall()]
        n += k
    return ids


# -------------------------------------------------------------------------- history

HISTORY_DDL = """
create table public.record_history (
    seq bigserial primary key,
    id bigint not null,
    old_status text,
    new_status text,
    old_worker text,
    new_worker text,
    old_token bigint,
    new_token bigint,
    old_attempt integer,
    new_attempt integer,
    max_attempts integer,
    old_lease_until timestamptz,
    actor text not null,
    at timestamptz not null,
    -- a row deleted from pgclaim.records or pgclaim.finished: when the same transaction
    -- inserts it into the other table (a record finishing, or a dead letter retried), the
    -- insert completes this step instead of adding one
    moving boolean not null default false,
    xact xid8
);

create function public.record_history_trg() returns trigger
language plpgsql security definer set search_path = pg_catalog, public as $fn$
declare
    v_seq bigint;
begin
    if tg_op = 'INSERT' then
        select h.seq into v_seq from public.record_history as h
        where h.id = new.id and h.moving and h.xact = pg_catalog.pg_current_xact_id()
        order by h.seq desc limit 1;
        if found then
            update public.record_history as h set
                new_status = new.status::text, new_worker = new.worker_id,
                new_token = new.lease_token, new_attempt = new.attempt, moving = false
            where h.seq = v_seq;
            return new;
        end if;
        insert into public.record_history (id, new_status, new_worker, new_token,
            new_attempt, max_attempts, actor, at)
        values (new.id, new.status::text, new.worker_id, new.lease_token, new.attempt,
            new.max_attempts, pg_catalog.current_setting('application_name'),
            pg_catalog.clock_timestamp());
        return new;
    elsif tg_op = 'UPDATE' then
        insert into public.record_history (id, old_status, new_status, old_worker,
            new_worker, old_token, new_token, old_attempt, new_attempt, max_attempts,
            old_lease_until, actor, at)
        values (new.id, old.status::text, new.status::text, old.worker_id, new.worker_id,
            old.lease_token, new.lease_token, old.attempt, new.attempt, new.max_attempts,
            old.lease_until, pg_catalog.current_setting('application_name'),
            pg_catalog.clock_timestamp());
        return new;
    end if;
    -- a dead letter coming back: retry_failed inserts it into pgclaim.records, then deletes
    -- it from pgclaim.finished (row triggers fire at the end of that one statement, in that
    -- order): the insert's step gets the status it came from
    if tg_table_name = 'finished' and exists (select from pgclaim.records as r where r.id = old.id)
    then
        update public.record_history as h set
            old_status = old.status::text, old_worker = old.worker_id,
            old_token = old.lease_token, old_attempt = old.attempt
        where h.seq = (
            select pg_catalog.max(x.seq) from public.record_history as x
            where x.id = old.id and x.old_status is null
        );
        return old;
    end if;
    insert into public.record_history (id, old_status, old_worker, old_token, old_attempt,
        max_attempts, old_lease_until, actor, at, moving, xact)
    values (old.id, old.status::text, old.worker_id, old.lease_token, old.attempt,
        old.max_attempts, old.lease_until, pg_catalog.current_setting('application_name'),
        pg_catalog.clock_timestamp(), true, pg_catalog.pg_current_xact_id());
    return old;
end;
$fn$;

create trigger record_history after insert or update or delete on pgclaim.records
for each row execute function public.record_history_trg();
create trigger record_history after insert or delete on pgclaim.finished
for each row execute function public.record_history_trg();
"""

def install_history(conn: psycopg.Connection[Any]) -> None:
    """Installs the history table and its triggers on pgclaim.records and pgclaim.finished
    (test database only)."""
    conn.execute(HISTORY_DDL)


# (old status, new status) steps of the lifecycle in DESIGN.md; None is "not there".
LEGAL_STEPS: frozenset[tuple[str | None, str | None]] = frozenset({
    (None, "pending"),            # enqueue
    ("pending", "running"),       # claim
    ("running", "running"),       # extend_lease / heartbeat
    ("running", "completed"),     # complete
    ("running", "pending"),       # fail with attempts left, release, reclaim
    ("running", "failed"),        # fail without attempts left, reclaim of the last attempt
    ("pending", "cancelled"),     # cancel
    ("running", "cancelled"),     # cancel
    ("failed", "pending"),        # retry_failed
    ("completed", None),          # purge
    ("failed", None),             # purge
    ("cancelled", None),          # purge
})


@dataclass
class HistoryReport:
    """Violations found in the record histories; empty lists mean none."""

    records: int
    steps: int
    illegal: list[str] = field(default_factory=list)
    double_holders: list[str] = field(default_factory=list)
    stale_reports: list[str] = field(default_factory=list)
    final_mismatch: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every history is legal and fenced."""
        return not (self.illegal or self.double_holders or self.stale_reports
                    or self.final_mismatch)


def check_history(
    conn: psycopg.Connection[Any], workers: frozenset[str], fatal_ok: bool = False,
) -> HistoryReport:
    """Checks every record's history.

    - each step is a legal lifecycle step, continuing from the previous one;
    - a claim hands a record to the claiming worker under a token never used for it before,
      and counts the attempt; release gives the attempt back;
    - while running, a record keeps one holder and one token (two holders would show as a
      change of worker or token without leaving running);
    - a step that a worker's own connection makes on a running record (complete, fail,
      extend, release) is made by that record's holder, unless it is the sweep of an expired
      lease inside claim_batch;
    - failed without attempts left only when ``fatal_ok``;
    - the last step matches the record's current status.
    """
    rows = conn.execute(
        "select seq, id, old_status, new_status, old_worker, new_worker, old_token, new_token,"
        " old_attempt, new_attempt, max_attempts, old_lease_until, actor, at"
        " from public.record_history order by id, seq"
    ).fetchall()
    current = dict(conn.execute("select id, status::text from public.every_record").fetchall())
    rep = HistoryReport(records=0, steps=len(rows))
    last: dict[int, str | None] = {}
    tokens: dict[int, set[int]] = defaultdict(set)
    for (seq, rid, old, new, ow, nw, ot, nt, oa, na, maxa, olu, actor, at) in rows:
        where = f"record {rid} step {seq} {old}->{new} by {actor}"
        if rid not in last:
            rep.records += 1
            if old is not None:
                rep.illegal.append(f"{where}: history does not start with the insert")
        elif last[rid] != old:
            rep.illegal.append(f"{where}: follows {last[rid]}")
        last[rid] = new
        if (old, new) not in LEGAL_STEPS:
            rep.illegal.append(f"{where}: not a lifecycle step")
            continue
        if old == "pending" and new == "running":
            if nw != actor:
                rep.double_holders.append(f"{where}: handed to {nw}")
            if nt is None or nt in tokens[rid]:
                rep.double_holders.append(f"{where}: token {nt} reused")
            if nt is not None:
                tokens[rid].add(nt)
            if na != oa + 1:
                rep.illegal.append(f"{where}: attempt {oa}->{na}")
        if old == "running" and new == "running" and (ow != nw or ot != nt):
            rep.double_holders.append(f"{where}: holder {ow}/{ot} became {nw}/{nt}")
        if old == "running" and actor in workers and actor != ow:
            # the sweep of an expired lease: back to pending (holder cleared), or, on the
            # last attempt, dead-lettered into pgclaim.finished, which keeps the holder
            sweep = (olu is not None and olu < at
                     and ((new == "pending" and nw is None) or new == "failed"))
            if not sweep:
                rep.stale_reports.append(f"{where}: record held by {ow}")
        if old == "running" and new == "failed" and oa < maxa and not fatal_ok:
            rep.illegal.append(f"{where}: failed with attempts left ({oa}/{maxa})")
        if old == "running" and new == "pending" and na not in (oa, oa - 1):
            rep.illegal.append(f"{where}: attempt {oa}->{na}")
    for rid, status in last.items():
        if current.get(rid) != status:
            rep.final_mismatch.append(f"record {rid}: history ends {status}, table {current.get(rid)}")
    for rid in current:
        if rid not in last:
            rep.final_mismatch.append(f"record {rid}: no history")
    return rep


def stats_vs_truth(conn: psycopg.Connection[Any], queue: str) -> tuple[dict[str, int], dict[str, int]]:
    """queue_stats counts and the records table's own counts, read in one snapshot."""
    with conn.transaction():
        conn.execute("set transaction isolation level repeatable read")
        s = conn.execute(
            "select pending + scheduled, running, completed, failed, cancelled"
            " from pgclaim.queue_stats where queue = %s", (queue,),
        ).fetchone()
        t = conn.execute(
            "select count(*) filter (where status = 'pending'),"
            " count(*) filter (where status = 'running'),"
            " count(*) filter (where status = 'completed'),"
            " count(*) filter (where status = 'failed'),"
            " count(*) filter (where status = 'cancelled')"
            " from public.every_record where queue = %s", (queue,),
        ).fetchone()
    assert s is not None and t is not None
    keys = ("pending", "running", "completed", "failed", "cancelled")
    return dict(zip(keys, map(int, s), strict=True)), dict(zip(keys, map(int, t), strict=True))


# -------------------------------------------------------------------------- mutants

# Mutants are made from the real function files, one deliberate edit each, so that they
# stay what the product is except for the one bug.
SQL_DIR = ROOT / "sql"


def mutant(path: str, old: str, new: str) -> str:
    """The text of sql/``path`` with ``old`` replaced by ``new`` (which must be there)."""
    text = (SQL_DIR / path).read_text()
    assert old in text, f"{path} no longer contains {old!r}: update the mutant"
    return text.replace(old, new)


def mutant_claim_no_lock() -> str:
    """claim_batch that reads its candidates without locking them (no FOR UPDATE SKIP
    LOCKED) and updates them without re-checking that they are still pending."""
    return mutant("30_api/pgclaim.claim_batch.sql",
                  "        for update skip locked\n", "")


def mutant_reclaim_live_leases() -> str:
    """_reclaim that also takes back leases that are still live (an off-by-a-day expiry
    test), so claim_batch's sweep steals records from their holders."""
    return mutant("20_internal/pgclaim._reclaim.sql",
                  "and r.lease_until < v_now\n",
                  "and r.lease_until < v_now + interval '1 day'\n")


def mutant_complete_no_holder() -> str:
    """complete without the holder check (in _finish, the statement that finishes records):
    any worker completes any running record."""
    return mutant("20_internal/pgclaim._finish.sql",
                  "              r.worker_id = _finish.worker_id\n              and (",
                  "              (")


# ------------------------------------------------------------ forced interleavings


def in_thread(fn: Callable[[], Any]) -> Future[Any]:
    """Runs ``fn`` in a thread of its own; its result (or exception) comes in the future."""
    ex = ThreadPoolExecutor(max_workers=1)
    fut = ex.submit(fn)
    ex.shutdown(wait=False)
    return fut


def wait_blocked(observer: psycopg.Connection[Any], pid: int, fut: Future[Any],
                 timeout: float = 60.0) -> None:
    """Waits until backend ``pid`` waits on a lock (and its call has not returned): the
    interleaving is then known, whatever the machine's speed. ``timeout`` only bounds a
    call that never waits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert not fut.done(), f"expected the call to wait, it returned {fut.result()!r}"
        if observer.execute("select 1 from pg_stat_activity where pid = %s"
                            " and wait_event_type = 'Lock'", (pid,)).fetchone():
            return
        time.sleep(0.01)
    raise AssertionError("the call never waited on a lock")
