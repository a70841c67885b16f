"""Network faults: through the fault proxy (connection failures, resets, delay, black hole,
partition, refusal), DNS failure, packet loss and partitions in a network namespace, a client
pool too small, and a cascade of faults at once."""
from __future__ import annotations

import random
import signal
import time
from collections.abc import Callable, Iterator

import pytest
from faults import FaultProxy, NetNamespace, netns_available
from harness import ChaosRun
from pgcluster import PrivateCluster, load_pgclaim

pytestmark = pytest.mark.chaos


def _through(proxy: FaultProxy, dsn: str) -> str:
    return proxy.dsn(dsn)


def test_a_third_of_connections_fail(chaos: Callable[..., ChaosRun], dsn: str,
                                     proxy: FaultProxy, report: Callable[..., None]) -> None:
    run = chaos(lease=2.0)
    run.enqueue(300)
    # Every third new connection is reset at once: a fixed pattern, so the three workers'
    # first connections alone meet at least one failure.
    proxy.set(fail_every=3)
    run.start_workers(3, worker_dsn=_through(proxy, dsn), sleep=0.01, batch_size=5,
                      pool_size=2)
    time.sleep(3.0)
    proxy.reset_all()  # force new connections while the fault is on
    time.sleep(1.0)
    proxy.set(fail_every=0)
    end = time.time()
    run.enqueue(20)
    assert run.wait_done(90), run.logs()
    result = run.audit(allowed_twice=None, fault_end=end)
    report(f"every 3rd new connection fails ({proxy.failed} of {proxy.accepted})", result, run)
    assert proxy.failed >= 1


def test_resets_mid_statement(chaos: Callable[..., ChaosRun], dsn: str, proxy: FaultProxy,
                              report: Callable[..., None]) -> None:
    run = chaos(lease=2.0)
    run.enqueue(400)
    run.start_workers(3, worker_dsn=_through(proxy, dsn), sleep=0.005, batch_size=5)
    resets = 0
    rng = random.Random(7)  # the same pauses between resets in every run
    deadline = time.monotonic() + 4.0
    while time.monotonic() < deadline:
        time.sleep(rng.uniform(0.1, 0.4))
        resets += proxy.reset_all()
    end = time.time()
    run.enqueue(20)
    assert run.wait_done(90), run.logs()
    result = run.audit(allowed_twice=None, fault_end=end)
    report(f"connections reset (RST) mid-statement ({resets} resets)", result, run)


@pytest.mark.parametrize("delay", [0.1, pytest.param(0.25, marks=pytest.mark.slow)])
def test_delay(chaos: Callable[..., ChaosRun], dsn: str, proxy: FaultProxy,
               report: Callable[..., None], delay: float) -> None:
    run = chaos(lease=30.0)  # a slow link is no reason to lose a lease
    run.enqueue(150)
    proxy.set(delay=delay)
    run.start_workers(3, worker_dsn=_through(proxy, dsn), sleep=0.005, batch_size=10)
    time.sleep(3.0)
    proxy.set(delay=0.0)
    end = time.time()
    assert run.wait_done(120), run.logs()
    result = run.audit(allowed_twice=0, fault_end=end if run.unfinished() else None)
    report(f"{delay * 1000:.0f} ms delay each way", result, run)


@pytest.mark.parametrize("mode,seconds", [
    ("refuse", 3.0),
    pytest.param("partition", 4.0, marks=pytest.mark.slow),
    pytest.param("blackhole", 8.0, marks=pytest.mark.slow),
])
def test_path_down(chaos: Callable[..., ChaosRun], dsn: str, proxy: FaultProxy,
                   report: Callable[..., None], mode: str, seconds: float) -> None:
    """The path to the database refuses, holds (partition) or swallows (black hole) traffic
    for a while, then heals; the workers (timeouts of 3-5 s) must come back by themselves."""
    lease = 2.0
    run = chaos(lease=lease)
    run.enqueue(300)
    run.start_workers(3, worker_dsn=_through(proxy, dsn), sleep=0.02, batch_size=5)
    time.sleep(1.0)
    proxy.set(mode)
    time.sleep(seconds)
    end = time.time()
    proxy.set("pass")
    if mode == "blackhole":
        proxy.reset_all()  # what the peers' own timeouts would do to the dead connections
    # A partition or a black hole stops every connection, so nothing is claimed, finished
    # or taken back during it: the records held at its end are exactly those in flight
    # through it, and only they may be handled twice. "refuse" only stops new
    # connections, so work goes on over the open ones and there is no such count: every
    # record handled twice must still have lost its lease first (the audit's check).
    in_flight = None if mode == "refuse" else run.in_flight_at(end)
    run.enqueue(20)
    assert run.wait_done(120), run.logs()
    result = run.audit(allowed_twice=in_flight, fault_end=end)
    report(f"path {mode} for {seconds:.0f} s", result, run)


def test_dns_failure(chaos: Callable[..., ChaosRun], dsn: str,
                     report: Callable[..., None]) -> None:
    """The database host does not resolve: the workers keep trying, take nothing, crash
    nothing; workers with a resolvable host then do all the work."""
    run = chaos(lease=30.0)  # no lease expires in this row
    run.enqueue(100)
    bad = dsn.replace("127.0.0.1", "pgclaim-db.invalid")
    lost_dns = run.start_workers(2, worker_dsn=bad, sleep=0.01, batch_size=5)
    time.sleep(3.0)
    assert all(w.alive() for w in lost_dns), run.logs()
    assert run.completed() == 0
    end = time.time()
    run.start_workers(2, sleep=0.01, batch_size=5)
    assert run.wait_done(60), run.logs()
    for w in lost_dns:  # they never reached the database: nothing to shut down cleanly
        w.signal(signal.SIGKILL)
    result = run.audit(allowed_twice=0, fault_end=end)
    report("DNS failure (host *.invalid)", result, run)


def test_client_pool_exhaustion(chaos: Callable[..., ChaosRun], dsn: str, proxy: FaultProxy,
                                report: Callable[..., None]) -> None:
    """A pool of one connection, 4 handler threads, a slow link and a 0.2 s pool timeout:
    calls time out waiting for the pool (PoolTimeout) and are retried."""
    run = chaos(lease=2.0)
    run.enqueue(200)
    proxy.set(delay=0.05)
    run.start_workers(2, worker_dsn=_through(proxy, dsn), sleep=0.01, batch_size=8,
                      concurrency=4, pool_size=1, pool_timeout=0.2, heartbeat_every=0.1)
    time.sleep(3.0)
    proxy.set(delay=0.0)
    end = time.time()
    run.enqueue(20)
    assert run.wait_done(90), run.logs()
    result = run.audit(allowed_twice=None, fault_end=end)
    report("client pool exhausted (1 connection, 0.2 s wait)", result, run)


NETNS_REASON = netns_available()


@pytest.fixture
def netns() -> Iterator[NetNamespace]:
    """A network namespace; deleted afterwards."""
    ns = NetNamespace()
    yield ns
    ns.heal()
    ns.close()


@pytest.mark.needs_root
@pytest.mark.skipif(NETNS_REASON is not None, reason=f"network namespace: {NETNS_REASON}")
# The partition row waits for the clients' 5 s TCP timeouts to notice the dead path: slow,
# and its recovery rests on those timers, so it runs with --heavy (make chaos) only.
@pytest.mark.parametrize("fault", ["loss 10 %", pytest.param("partition", marks=pytest.mark.slow)])
def test_netns(chaos: Callable[..., ChaosRun], dsn: str, netns: NetNamespace,
               report: Callable[..., None], fault: str) -> None:
    """Workers inside a network namespace reach the database through its veth pair; iptables
    drops every 10th packet each way (a fixed pattern, not a draw), or all of them for 6 s
    (a partition)."""
    host_port = dsn.split("@", 1)[1].split("/", 1)[0]
    host, port = host_port.rsplit(":", 1)
    db_proxy = FaultProxy(host, int(port), listen_host=netns.host_ip)
    ledger_proxy = FaultProxy(host, int(port), listen_host=netns.host_ip)
    try:
        run = chaos(lease=3.0)
        run.enqueue(300)
        if fault != "partition":
            netns.drop(db_proxy.port, every=10)
        run.start_workers(3, worker_dsn=db_proxy.dsn(dsn), ledger_dsn=ledger_proxy.dsn(dsn),
                          prefix=netns.prefix(), sleep=0.02, batch_size=5)
        time.sleep(1.0)
        if fault == "partition":
            netns.drop(db_proxy.port)
            time.sleep(6.0)
        else:
            time.sleep(4.0)
        end = time.time()
        netns.heal()
        # During a partition nothing reaches the database: the records held at its end
        # are those in flight through it (see test_path_down).
        in_flight = run.in_flight_at(end) if fault == "partition" else None
        run.enqueue(20)
        assert run.wait_done(120), run.logs()
        result = run.audit(allowed_twice=in_flight, fault_end=end)
        report(f"network namespace: {fault}", result, run)
        run.stop_all()
    finally:
        db_proxy.close()
        ledger_proxy.close()


@pytest.mark.slow
def test_cascade(chaos: Callable[..., ChaosRun], report: Callable[..., None]) -> None:
    """Database restart while a third of the workers are killed and connections are reset."""
    cluster = PrivateCluster()
    run: ChaosRun | None = None
    proxy = FaultProxy("127.0.0.1", cluster.port)
    try:
        db = load_pgclaim(cluster.url, "chaos")
        run = chaos(db, lease=2.0)
        run.enqueue(600)
        workers = run.start_workers(6, worker_dsn=proxy.dsn(db), sleep=0.02, batch_size=5)
        time.sleep(1.0)
        in_flight = run.running()
        for w in workers[:2]:
            run.kill(w, signal.SIGKILL)
        proxy.reset_all()
        cluster.crash()
        time.sleep(3.0)
        cluster.start()
        proxy.reset_all()
        end = time.time()
        run.enqueue(20)
        assert run.wait_done(120), run.logs()
        result = run.audit(allowed_twice=in_flight, fault_end=end)
        report("cascade: restart + 2 of 6 killed + resets", result, run)
    finally:
        if run is not None:
            run.stop_all()
        proxy.close()
        cluster.close()
