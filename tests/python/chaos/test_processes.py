"""Process faults: many processors, SIGKILL at each step, SIGSTOP past the lease, heartbeats,
an out-of-memory kill in a memory cgroup, and the negative control the audit must catch."""
from __future__ import annotations

import signal
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from faults import Cgroup, cgroup_available
from harness import ChaosRun, WorkerProc
from pgdb import freeze_clock

pytestmark = pytest.mark.chaos


@pytest.mark.parametrize("processors", [
    5, pytest.param(10, marks=pytest.mark.slow), pytest.param(20, marks=pytest.mark.slow)])
def test_no_duplicates(chaos: Callable[..., ChaosRun], report: Callable[..., None],
                       processors: int) -> None:
    run = chaos(lease=30.0)  # no fault: no lease may expire, however slow the machine
    run.enqueue(60 * processors)
    run.start_workers(processors, sleep=0.002, batch_size=5)
    assert run.wait_done(120), run.logs()
    result = run.audit(allowed_twice=0)
    report(f"no fault, {processors} processors", result, run)
    assert result.handled_twice == 0


def test_negative_control_naive_claim_is_caught(
        chaos: Callable[..., ChaosRun], report: Callable[..., None]) -> None:
    """A claim without SKIP LOCKED and without the status check: the audit must object.
    The naive workers meet after their first read, before any of them writes, so they
    always hand out the same records (the race is forced, not hoped for)."""
    run = chaos(engine="naive")
    run.enqueue(200)
    run.start_workers(5, sleep=0.002, batch_size=10, rendezvous=5)
    assert run.wait_done(60), run.logs()
    result = run.audit(allowed_twice=0)
    assert result.violations, "the audit missed a naive claim that hands records out twice"
    assert result.handled_twice > 0
    result.violations = []  # the control passes when the audit objects
    report("negative control: naive claim (audit must catch)", result, run)


STEPS = ["before_claim", "after_claim", "after_effect", "during_complete"]


@pytest.mark.parametrize("step", STEPS)
def test_sigkill_at_each_step(chaos: Callable[..., ChaosRun], report: Callable[..., None],
                              orphan_slack: float, step: str) -> None:
    lease, poll = 1.5, 0.2
    run = chaos(lease=lease, poll=poll)
    run.enqueue(300)
    # The dying worker starts first and claims before the others start: its batch is
    # certain, not left to whoever is faster. The others hold long leases, so only the
    # dying worker's records can expire.
    dying = run.start_workers(1, sleep=0.02, batch_size=5, die_at=step, die_after=1)[0]
    assert run.wait_until(lambda: any(e["ev"] in ("claimed", "dying")
                                      for e in dying.events()), 30), run.logs()
    run.start_workers(3, sleep=0.02, batch_size=5, lease=30.0)
    assert run.wait_until(lambda: not dying.alive(), 30), run.logs()
    assert any(e["ev"] == "dying" for e in dying.events())
    assert run.wait_done(60), run.logs()
    in_flight = sum(len(k.held) for k in run.self_kills())
    result = run.audit(allowed_twice=in_flight, orphan_bound=lease + poll + orphan_slack)
    report(f"SIGKILL {step.replace('_', ' ')}", result, run)


def test_sigkill_random_workers(chaos: Callable[..., ChaosRun],
                                report: Callable[..., None], orphan_slack: float) -> None:
    """Two of five workers are killed mid-run while they hold records.

    The two start first and claim the ten gated records (the oldest): their handlers wait
    at the gate, so each is certain to hold five records when it is killed. The three that
    live on hold long leases, so only the killed workers' records can expire; the gate opens
    after the kills, and records added after the fault measure the recovery."""
    lease, poll = 1.5, 0.2
    run = chaos(lease=lease, poll=poll)
    run.enqueue(10, lambda i: {"gate": True})
    run.enqueue(300)
    victims = run.start_workers(2, sleep=0.02, batch_size=5)
    assert run.wait_until(lambda: all(len(run.held_by(v.worker_id())) == 5 for v in victims),
                          30), run.logs()
    run.start_workers(3, sleep=0.02, batch_size=5, lease=30.0)
    assert run.wait_until(lambda: run.completed() >= 20, 30), run.logs()  # mid-run
    in_flight = 0
    for w in victims:
        in_flight += len(run.kill(w).held)
        time.sleep(0.3)
    run.open_gate()
    end = time.time()
    run.enqueue(20)
    assert run.wait_done(60), run.logs()
    result = run.audit(allowed_twice=in_flight, orphan_bound=lease + poll + orphan_slack,
                       fault_end=end)
    report("SIGKILL 2 of 5 workers", result, run)
    assert in_flight == 10


def test_paused_worker_reports_are_refused(chaos: Callable[..., ChaosRun],
                                           report: Callable[..., None]) -> None:
    """SIGSTOP past the lease: others take its records; its late completes change nothing."""
    lease, poll = 1.0, 0.2
    run = chaos(lease=lease, poll=poll)
    run.enqueue(20, lambda i: {"sleep": 0.3})
    run.enqueue(100)
    paused = run.start_workers(1, batch_size=5, heartbeat_every=0.3)[0]
    assert run.wait_until(lambda: bool(run.held_by(paused.worker_id())), 30), run.logs()
    # Paused while it holds records: between a complete and its next claim it holds
    # none, so pause again until it is caught holding some.
    for _ in range(200):
        ev = run.kill(paused, signal.SIGSTOP, "SIGSTOP")
        if ev.held:
            break
        run.kills.remove(ev)
        paused.signal(signal.SIGCONT)
        time.sleep(0.05)
    assert ev.held
    run.start_workers(2, batch_size=5, lease=30.0)  # long leases: only the paused one's expire
    stolen = {rid for rid, _ in ev.held}
    assert run.wait_until(lambda: int(run.scalar(
        "select count(*) from chaos_audit.transitions where old_status = 'running'"
        " and new_status = 'completed' and record_id = any(%s) and lease_token <> %s",
        (list(stolen), ev.held[0][1]))) == len(stolen), 30), run.logs()
    paused.signal(signal.SIGCONT)
    end = time.time()
    run.enqueue(20)  # completed after the fault, whatever was left before it
    assert run.wait_done(60), run.logs()
    run.wait_until(lambda: any(e["ev"] in ("complete", "complete_error")
                               and set(e.get("ids", [])) & stolen for e in paused.events()), 10)
    late = [e for e in paused.events() if e["ev"] == "complete" and set(e["ids"]) & stolen]
    refused = sum(e["asked"] - e["done"] for e in late)
    result = run.audit(allowed_twice=len(ev.held), fault_end=end)
    report("SIGSTOP past the lease (late reports refused)", result, run,
           refused=refused)
    assert late, "the paused worker never reported after SIGCONT"
    assert refused >= 1, late


T0 = datetime(2030, 1, 1, tzinfo=UTC)


def test_heartbeats_keep_a_long_handler(chaos: Callable[..., ChaosRun], dsn: str,
                                        report: Callable[..., None]) -> None:
    """A handler running 4 leases long keeps its record: nobody else handles it.

    The database clock is frozen and the test moves it 0.6 lease at a time, 7 times (4.2
    leases), waiting after each move until a heartbeat extended every lease from the new
    time; the handlers wait at a gate until then. Without heartbeats the leases would
    expire at the second move; no step depends on how fast the machine is."""
    lease = 1.0
    run = chaos(lease=lease, poll=0.1)
    with psycopg.connect(dsn, autocommit=True) as clock:
        freeze_clock(clock, T0)
        ids = run.enqueue(3, lambda i: {"gate": True})
        run.start_workers(3, batch_size=1, heartbeat_every=0.25)
        running = ("select count(*) from public.every_record where status = 'running'"
                   " and lease_until = pgclaim._now() + %s * interval '1 second'")
        assert run.wait_until(lambda: clock.execute(running, (lease,)).fetchone() == (3,),
                              60), run.logs()
        for step in range(1, 8):
            freeze_clock(clock, T0 + timedelta(milliseconds=600 * step))
            assert run.wait_until(lambda: clock.execute(running, (lease,)).fetchone() == (3,),
                                  60), f"no heartbeat after move {step}\n{run.logs()}"
            assert clock.execute("select pgclaim.reclaim_orphans()").fetchone() == (0,)
        run.open_gate()
        assert run.wait_done(60), run.logs()
    result = run.audit(allowed_twice=0)
    report("long handler, heartbeats (4 x lease)", result, run)
    reclaimed = run.scalar("select count(*) from chaos_audit.transitions"
                           " where record_id = any(%s) and old_status = 'running'"
                           " and new_status <> 'completed'", (ids,))
    assert reclaimed == 0


MEM_REASON = cgroup_available("memory")


@pytest.mark.needs_root
@pytest.mark.skipif(MEM_REASON is not None, reason=f"memory cgroup: {MEM_REASON}")
def test_oom_killed_worker_dead_letters_the_poison_record(
        chaos: Callable[..., ChaosRun], report: Callable[..., None]) -> None:
    """A record whose handler blows the memory limit kills its worker each time; after
    max_attempts it ends failed (dead letter), the rest complete, and restarts stop.

    Each worker has a memory cgroup of its own, as a container would: the kernel then
    kills the process that ran out, never a bystander that shares its limit, so there is
    exactly one kill (and one restart) per attempt at the poison record."""
    lease, poll = 1.0, 0.2
    run = chaos(lease=lease, poll=poll, max_attempts=3)
    groups: list[Cgroup] = []
    group_of: dict[str, Cgroup] = {}
    opts: dict[str, Any] = {"sleep": 0.02, "batch_size": 1}

    def start(group: Cgroup, wait_started: bool = True) -> None:
        (w,) = run.start_workers(1, preexec=group.join_self, wait_started=wait_started, **opts)
        group_of[w.label] = group

    def restart(dead: WorkerProc) -> None:  # a replacement in the dead worker's cgroup
        start(group_of[dead.label], wait_started=False)

    try:
        run.enqueue(30)
        poison = run.enqueue(1, lambda i: {"alloc_mb": 400})
        run.enqueue(30)
        for _ in range(3):
            groups.append(Cgroup("memory", memory_bytes=150 * 1024 * 1024))
            start(groups[-1])
        assert run.wait_done(90, restart=restart), run.logs()
        oom = sum(g.oom_kills() for g in groups)
        result = run.audit(expect_failed=poison, allowed_twice=None)
        report("OOM kill in a memory cgroup (poison record)", result, run, oom_kills=oom)
        attempts = run.scalar("select attempt from public.every_record where id = %s", (poison[0],))
        assert attempts == 3
        assert oom == 3, "one kill per attempt at the poison record"
        died = [w.label for w in run.workers if not w.alive()]
        assert len(died) == 3, f"workers {died} died: one per kill, no crash loop"
    finally:
        run.stop_all()
        for g in groups:
            g.close()
