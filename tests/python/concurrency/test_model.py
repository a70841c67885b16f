"""Model-based test: random sequences of pgclaim calls, each result compared with a small
Python model of the record lifecycle (DESIGN.md), on a frozen clock that the test moves.

Hypothesis drives a RuleBasedStateMachine through enqueue, enqueue_batch, claim_batch,
complete, fail, release, extend_lease, heartbeat, cancel, retry_failed, reclaim_orphans,
purge and clock moves, with several workers; after every step the whole records table and
queue_stats must equal the model. Derandomized, so CI runs the same sequences every time.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import psycopg
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from pgdb import freeze_clock

pytestmark = pytest.mark.concurrent

Q = "model"
LEASE = timedelta(seconds=30)
MAX_ATTEMPTS = 3
BACKOFF_BASE = timedelta(seconds=10)
BACKOFF_MAX = timedelta(seconds=60)
RETENTION = timedelta(hours=1)
WORKER_TIMEOUT = timedelta(minutes=1)
START = datetime(2030, 1, 1, tzinfo=UTC)
UNKNOWN_ID = 10**12
WORKERS = st.sampled_from(["w1", "w2", "w3"])
PICKS = st.lists(st.integers(0, 40), max_size=4, unique=True)
TOKEN_MODES = st.sampled_from(["none", "current", "wrong"])
SECONDS = {None: None, **{s: timedelta(seconds=s) for s in (0, 5, 10, 20, 45, 90, 120)}}


@dataclass
class Rec:
    """The model of one record."""

    id: int
    status: str
    priority: int
    run_at: datetime
    attempt: int
    max_attempts: int
    dedup: str | None
    worker: str | None = None
    token: int | None = None
    lease_until: datetime | None = None
    lease_for: timedelta | None = None
    finished_at: datetime | None = None

    def take_back(self, now: datetime) -> None:
        """Reclaim: back to pending, or failed when no attempt is left."""
        self.status = "failed" if self.attempt >= self.max_attempts else "pending"
        self.finished_at = now if self.status == "failed" else None
        self.worker = self.token = self.lease_until = self.lease_for = None


class PgclaimModel(RuleBasedStateMachine):
    """Drives the SQL API of one database and a Python model side by side."""

    conn: ClassVar[psycopg.Connection[Any]]

    def __init__(self) -> None:
        super().__init__()
        c = self.conn
        c.execute("truncate pgclaim.records, pgclaim.finished, pgclaim.queue_totals,"
                  " pgclaim.queue_grants, pgclaim.queues,"
                  " pgclaim.workers restart identity")
        c.execute("select pgclaim.configure(worker_timeout => %s, sweep_limit => 1000)",
                  (WORKER_TIMEOUT,))
        self.now = START
        freeze_clock(c, self.now)
        c.execute("select pgclaim.create_queue(%s, lease => %s, max_attempts => %s,"
                  " backoff_base => %s, backoff_max => %s, retention => %s)",
                  (Q, LEASE, MAX_ATTEMPTS, BACKOFF_BASE, BACKOFF_MAX, RETENTION))
        self.recs: dict[int, Rec] = {}
        self.seen_ids: list[int] = []
        self.seen_tokens: set[int] = set()
        self.workers: dict[str, datetime] = {}

    # ---------------------------------------------------------------- helpers

    def q(self, sql: str, args: Any = None) -> list[tuple[Any, ...]]:
        return self.conn.execute(sql, args).fetchall()

    def pick(self, picks: list[int]) -> list[int]:
        pool = self.seen_ids + [UNKNOWN_ID]
        return list(dict.fromkeys(pool[i % len(pool)] for i in picks))

    def tokens_for(self, ids: list[int], mode: str) -> list[int | None] | None:
        if mode == "none":
            return None
        out: list[int | None] = []
        for i in ids:
            r = self.recs.get(i)
            tok = r.token if r is not None and r.token is not None else 0
            out.append(tok if mode == "current" else tok ^ 1)
        return out

    def holds(self, r: Rec | None, worker: str, token: int | None) -> bool:
        return (r is not None and r.status == "running" and r.worker == worker
                and (token is None or r.token == token))

    def new_record(self, rid: int, priority: int, run_at: datetime, max_attempts: int | None,
                   dedup: str | None) -> None:
        assert not self.seen_ids or rid > max(self.seen_ids), "ids grow"
        self.recs[rid] = Rec(rid, "pending", priority, run_at, 0,
                             max_attempts or MAX_ATTEMPTS, dedup)
        self.seen_ids.append(rid)

    # ------------------------------------------------------------------ rules

    @rule(priority=st.integers(0, 2), delay=st.sampled_from([None, 0, 20, 90]),
          dedup=st.sampled_from([None, "a", "b"]), max_attempts=st.sampled_from([None, 1, 2]))
    def enqueue(self, priority: int, delay: int | None, dedup: str | None,
                max_attempts: int | None) -> None:
        run_at = None if delay is None else self.now + timedelta(seconds=delay)
        [(rid,)] = self.q("select pgclaim.enqueue(%s, '{}', %s, %s, %s, %s)",
                          (Q, priority, run_at, dedup, max_attempts))
        held = [r for r in self.recs.values()
                if dedup is not None and r.dedup == dedup and r.status in ("pending", "running")]
        if held:
            assert rid == held[0].id
        else:
            self.new_record(rid, priority, run_at or self.now, max_attempts, dedup)

    @rule(n=st.integers(0, 3), priority=st.integers(0, 2))
    def enqueue_batch(self, n: int, priority: int) -> None:
        ids = [r[0] for r in self.q("select pgclaim.enqueue_batch(%s, %s, %s)",
                                    (Q, [psycopg.types.json.Jsonb({})] * n, priority))]
        assert len(ids) == n and ids == sorted(ids)
        for rid in ids:
            self.new_record(rid, priority, self.now, None, None)

    @rule(worker=WORKERS, size=st.integers(1, 4), lease=st.sampled_from([None, 10, 45]))
    def claim(self, worker: str, size: int, lease: int | None) -> None:
        rows = self.q("select id, attempt, lease_until, lease_token, priority, run_at"
                      " from pgclaim.claim_batch(%s, %s, %s, %s)",
                      (Q, worker, size, SECONDS[lease]))
        for r in self.recs.values():  # the sweep of expired leases
            if r.status == "running" and r.lease_until is not None and r.lease_until < self.now:
                r.take_back(self.now)
        due = sorted((r for r in self.recs.values()
                      if r.status == "pending" and r.run_at <= self.now),
                     key=lambda r: (-r.priority, r.run_at, r.id))[:size]
        assert [row[0] for row in rows] == [r.id for r in due]
        tokens = {row[3] for row in rows}
        assert len(tokens) <= 1
        length = SECONDS[lease] or LEASE
        for row, r in zip(rows, due, strict=True):
            assert row[3] not in self.seen_tokens, "every claim draws a new lease token"
            r.status, r.worker, r.token = "running", worker, row[3]
            r.attempt += 1
            r.lease_until, r.lease_for = self.now + length, length
            assert (row[1], row[2]) == (r.attempt, r.lease_until)
        self.seen_tokens |= tokens

    @rule(worker=WORKERS, picks=PICKS, mode=TOKEN_MODES)
    def complete(self, worker: str, picks: list[int], mode: str) -> None:
        ids = self.pick(picks)
        toks = self.tokens_for(ids, mode)
        [(n,)] = self.q("select pgclaim.complete(%s, %s, %s)", (worker, ids, toks))
        expected = 0
        for i, rid in enumerate(ids):
            r = self.recs.get(rid)
            if self.holds(r, worker, None if toks is None else toks[i]):
                assert r is not None
                r.status, r.finished_at, r.lease_until = "completed", self.now, None
                expected += 1
        assert n == expected

    @rule(worker=WORKERS, pick=st.integers(0, 40), retry=st.sampled_from([None, 0, 5, 120]),
          mode=TOKEN_MODES, fatal=st.booleans())
    def fail(self, worker: str, pick: int, retry: int | None, mode: str, fatal: bool) -> None:
        (rid,) = self.pick([pick])
        toks = self.tokens_for([rid], mode)
        tok = None if toks is None else toks[0]
        r = self.recs.get(rid)
        expected_state = None if r is None else ("PC003" if not self.holds(r, worker, tok)
                                                 else None)
        try:
            [(st_,)] = self.q("select pgclaim.fail(%s, %s, 'err', %s, %s, %s)",
                              (worker, rid, SECONDS[retry], tok, fatal))
        except psycopg.Error as exc:
            assert exc.sqlstate == ("PC002" if r is None else expected_state)
            return
        assert r is not None and expected_state is None
        if fatal or r.attempt >= r.max_attempts:
            assert st_ == "failed"
            r.status, r.finished_at, r.lease_until = "failed", self.now, None
            return
        assert st_ == "pending"
        [(run_at,)] = self.q("select run_at from public.every_record where id = %s", (rid,))
        if retry is not None:
            assert run_at == self.now + timedelta(seconds=retry)
        else:
            full = min(BACKOFF_MAX, BACKOFF_BASE * 2 ** (r.attempt - 1))
            eps = timedelta(microseconds=2)
            assert self.now + full / 2 - eps <= run_at <= self.now + full + eps
        r.status, r.run_at = "pending", run_at
        r.worker = r.token = r.lease_until = r.lease_for = None

    @rule(worker=WORKERS, picks=PICKS, mode=TOKEN_MODES)
    def release(self, worker: str, picks: list[int], mode: str) -> None:
        ids = self.pick(picks)
        toks = self.tokens_for(ids, mode)
        [(n,)] = self.q("select pgclaim.release(%s, %s, %s)", (worker, ids, toks))
        expected = 0
        for i, rid in enumerate(ids):
            r = self.recs.get(rid)
            if self.holds(r, worker, None if toks is None else toks[i]):
                assert r is not None
                r.status, r.attempt = "pending", r.attempt - 1
                r.worker = r.token = r.lease_until = r.lease_for = None
                expected += 1
        assert n == expected

    @rule(worker=WORKERS, picks=PICKS, lease=st.sampled_from([None, 20, 120]), mode=TOKEN_MODES)
    def extend(self, worker: str, picks: list[int], lease: int | None, mode: str) -> None:
        ids = self.pick(picks)
        toks = self.tokens_for(ids, mode)
        [(n,)] = self.q("select pgclaim.extend_lease(%s, %s, %s, %s)",
                        (worker, ids, SECONDS[lease], toks))
        expected = 0
        for i, rid in enumerate(ids):
            r = self.recs.get(rid)
            if self.holds(r, worker, None if toks is None else toks[i]):
                assert r is not None and r.lease_for is not None
                r.lease_for = SECONDS[lease] or r.lease_for
                r.lease_until = self.now + r.lease_for
                expected += 1
        assert n == expected

    @rule(worker=WORKERS)
    def heartbeat(self, worker: str) -> None:
        [(n,)] = self.q("select pgclaim.heartbeat(%s)", (worker,))
        self.workers[worker] = self.now
        held = [r for r in self.recs.values() if r.status == "running" and r.worker == worker]
        for r in held:
            assert r.lease_for is not None
            r.lease_until = self.now + r.lease_for
        assert n == len(held)

    @rule(picks=PICKS)
    def cancel(self, picks: list[int]) -> None:
        ids = self.pick(picks)
        [(n,)] = self.q("select pgclaim.cancel(%s)", (ids,))
        hit = [self.recs[i] for i in ids
               if i in self.recs and self.recs[i].status in ("pending", "running")]
        for r in hit:
            r.status, r.finished_at, r.lease_until = "cancelled", self.now, None
        assert n == len(hit)

    @rule(picks=st.none() | PICKS)
    def retry_failed(self, picks: list[int] | None) -> None:
        ids = None if picks is None else self.pick(picks)
        [(n,)] = self.q("select pgclaim.retry_failed(%s, %s)", (Q, ids))
        hit = [r for r in self.recs.values()
               if r.status == "failed" and (ids is None or r.id in ids)]
        for r in hit:
            r.status, r.attempt, r.run_at, r.finished_at = "pending", 0, self.now, None
        assert n == len(hit)

    @rule()
    def reclaim_orphans(self) -> None:
        [(n,)] = self.q("select pgclaim.reclaim_orphans()")
        dead = {w for w, seen in self.workers.items() if seen < self.now - WORKER_TIMEOUT}
        hit = [r for r in self.recs.values() if r.status == "running" and (
            r.worker in dead or (r.lease_until is not None and r.lease_until < self.now))]
        for r in hit:
            r.take_back(self.now)
        assert n == len(hit)

    @rule(older=st.sampled_from([None, 0, 45]))
    def purge(self, older: int | None) -> None:
        [(n,)] = self.q("select pgclaim.purge(%s, %s)", (Q, SECONDS[older]))
        cutoff = self.now - (SECONDS[older] if older is not None else RETENTION)
        gone = [r.id for r in self.recs.values()
                if r.status in ("completed", "failed", "cancelled")
                and r.finished_at is not None and r.finished_at < cutoff]
        for rid in gone:
            del self.recs[rid]
        assert n == len(gone)

    @rule(seconds=st.sampled_from([1, 5, 15, 31, 61, 200, 4000]))
    def advance(self, seconds: int) -> None:
        self.now += timedelta(seconds=seconds)
        freeze_clock(self.conn, self.now)

    # -------------------------------------------------------------- invariants

    @invariant()
    def table_equals_model(self) -> None:
        rows = self.q("select id, status::text, attempt, priority, run_at, max_attempts,"
                      " case when status = 'running' then worker_id end,"
                      " case when status = 'running' then lease_token end, lease_until,"
                      " finished_at from public.every_record order by id")
        want = [(r.id, r.status, r.attempt, r.priority, r.run_at, r.max_attempts,
                 r.worker if r.status == "running" else None,
                 r.token if r.status == "running" else None, r.lease_until, r.finished_at)
                for r in sorted(self.recs.values(), key=lambda r: r.id)]
        assert rows == want

    @invariant()
    def stats_equal_model(self) -> None:
        rows = self.q("select pending, scheduled, running, completed, failed, cancelled,"
                      " oldest_pending_age from pgclaim.queue_stats where queue = %s", (Q,))
        recs = list(self.recs.values())
        due = [r.run_at for r in recs if r.status == "pending" and r.run_at <= self.now]
        want = (
            len(due),
            sum(1 for r in recs if r.status == "pending" and r.run_at > self.now),
            *(sum(1 for r in recs if r.status == s)
              for s in ("running", "completed", "failed", "cancelled")),
            (self.now - min(due)) if due else None,
        )
        assert rows == [want]


def test_sql_api_follows_the_lifecycle_model(conn: psycopg.Connection[Any]) -> None:
    PgclaimModel.conn = conn
    run_state_machine_as_test(PgclaimModel, settings=settings(
        max_examples=40, stateful_step_count=30, derandomize=True, database=None,
        deadline=None, suppress_health_check=[HealthCheck.too_slow],
    ))
