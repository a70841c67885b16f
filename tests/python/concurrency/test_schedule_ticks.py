"""Periodic schedules under 20 concurrent tickers: at each step of a frozen clock, ten
connections call ``tick()`` and ten call ``claim_batch`` (which ticks when a schedule is due),
all at once; a ledger written by a trigger on the records table shows each slot enqueued
exactly once, and exactly the slots the missed-slot policy names."""
from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from pgdb import freeze_clock

pytestmark = pytest.mark.concurrent

TICKERS = 20
STEPS = 30
STEP = timedelta(seconds=37)
T0 = datetime(2030, 1, 1, 0, 0, 10, tzinfo=UTC)

# Every record pgclaim inserts, in the inserting transaction (rolled back with it).
LEDGER = """
create table public.sched_ledger (id bigint, queue text, dedup_key text);
create function public.sched_note() returns trigger language plpgsql security definer as $$
begin
    insert into public.sched_ledger values (new.id, new.queue, new.dedup_key);
    return new;
end $$;
create trigger sched_note after insert on pgclaim.records
for each row execute function public.sched_note();
"""

CLAIM_COMPLETE = """
with c as materialized (
    select id from pgclaim.claim_batch(%(queue)s, %(worker)s, 5)
)
select pgclaim.complete(%(worker)s, coalesce(array_agg(c.id), '{}')) from c
"""


def floor_to(t: datetime, seconds: int, origin: datetime) -> datetime:
    """The latest slot of a grid ``origin + k * seconds`` at or before ``t``."""
    return origin + timedelta(seconds=seconds * ((t - origin) // timedelta(seconds=seconds)))


def ticker(dsn: str, k: int, barrier: threading.Barrier, claimed: Counter[int],
           lock: threading.Lock, errors: list[BaseException]) -> None:
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            for _ in range(STEPS):
                barrier.wait(timeout=120)  # the clock is set
                for _ in range(3):
                    if k % 2:
                        conn.execute("select pgclaim.tick()")
                    else:
                        ids = conn.execute(
                            "select id from pgclaim.claim_batch('sched_cc', %s, 5)",
                            (f"w{k}",)).fetchall()
                        conn.execute("select pgclaim.complete(%s, %s)",
                                     (f"w{k}", [i for (i,) in ids]))
                        with lock:
                            claimed.update(i for (i,) in ids)
                barrier.wait(timeout=120)  # every call of this step is done
    except BaseException as exc:  # noqa: BLE001 - reported by the test
        errors.append(exc)
        barrier.abort()


def test_each_slot_enqueued_once_under_20_tickers(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(LEDGER)
        freeze_clock(conn, T0)
        conn.execute("select pgclaim.create_queue('sched_cc')")
        conn.execute("select pgclaim.schedule('minute', 'sched_cc', cron => '* * * * *')")
        conn.execute("select pgclaim.schedule('five', 'sched_cc', cron => '*/5 * * * *')")
        conn.execute("select pgclaim.schedule('twenty', 'sched_cc', every => '20 seconds')")
        barrier = threading.Barrier(TICKERS + 1)
        claimed: Counter[int] = Counter()
        lock = threading.Lock()
        errors: list[BaseException] = []
        threads = [threading.Thread(target=ticker,
                                    args=(dsn, k, barrier, claimed, lock, errors))
                   for k in range(TICKERS)]
        for t in threads:
            t.start()
        times = [T0 + STEP * (s + 1) for s in range(STEPS)]
        try:
            for now in times:
                freeze_clock(conn, now)
                barrier.wait(timeout=120)
                barrier.wait(timeout=120)
        except threading.BrokenBarrierError:
            pass
        for t in threads:
            t.join(timeout=120)
        assert not any(t.is_alive() for t in threads), "a ticker hung"
        assert errors == []
        # What is left is claimed once more by one connection (records' run_at <= now).
        rest = conn.execute("select id from pgclaim.claim_batch('sched_cc', 'w-last', 1000)"
                            ).fetchall()
        claimed.update(i for (i,) in rest)
        ledger = conn.execute("select id, dedup_key from public.sched_ledger").fetchall()
        status = dict(conn.execute(
            "select name, next_slot from pgclaim.schedule_status").fetchall())

    keys = Counter(key for _, key in ledger)
    assert [k for k, n in keys.items() if n != 1] == [], "a slot was enqueued twice"

    def key(name: str, slot: datetime) -> str:
        return f"schedule:{name}:{slot.strftime('%Y-%m-%dT%H:%M:%SZ')}"

    midnight = datetime(2030, 1, 1, tzinfo=UTC)
    expected = set()
    for now in times:
        # the latest slot at or before each step (every step ticked at least once)
        # (from the first slot after T0, when the schedules were made)
        if floor_to(now, 60, midnight) > T0:
            expected.add(key("minute", floor_to(now, 60, midnight)))
        if floor_to(now, 300, midnight) > T0:
            expected.add(key("five", floor_to(now, 300, midnight)))
        if floor_to(now, 20, T0) > T0:
            expected.add(key("twenty", floor_to(now, 20, T0)))
    assert set(keys) == expected, "exactly the slots of the missed-slot policy"
    assert sorted(claimed) == sorted(i for i, _ in ledger), "each record handed out once"
    assert max(claimed.values()) == 1
    last = times[-1]
    assert status["minute"] == floor_to(last, 60, midnight) + timedelta(minutes=1)
    assert status["twenty"] == floor_to(last, 20, T0) + timedelta(seconds=20)
