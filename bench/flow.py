"""Flow-control benchmark: FIFO groups and queue limits against the ungrouped drain.

    .venv/bin/python bench/flow.py [--records 100000] [--workers 4] [--batch 100]
                                   [--repeat 3] [--baseline REV]

Each row drains the same number of records through the SQL API (claim_batch, then complete
with the lease tokens) with W client processes, each in a fresh database:

  ungrouped            the records without groups (the drain of docs/performance.md)
  limits not binding   the same, in a queue with max_running and rate set far above the load
  1000 groups          the records spread over 1,000 FIFO groups, round robin
  10 groups            the records spread over 10 groups
Each grouped row first makes 10 % of its groups blocked: their head is claimed and failed
with a retry an hour away, so the rest of those groups waits behind it for the whole run (the
drain counts only the records it can hand out). With --baseline REV, the ungrouped drain also
runs against pgclaim as it was at git revision REV (its sql/, loaded into its own template),
interleaved with today's. Rates are records per second to the last completion.

Fairness: the records spread over 1,000 groups, enqueued first (a big tenant's backlog), then
one small group of 10 records; drained with fair off and on. Printed: the rate, and when the
small group's last record completed, as the share of the drain completed by then (with fair
off the small group waits behind every older head: about 100 %).
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import psycopg
import systems
from common import ROOT, Sample, clone_db, cluster_url, connect, drop_db, fmt_sample, log
from procs import run_group

QUEUE = systems.QUEUE
BASELINE_TEMPLATE = "bench_flow_baseline"
FLOW_TEMPLATE = "bench_flow_template"

# Drainable: running, or pending and due (records waiting behind a head have priority
# -2147483648 and run_at 'infinity', past the end of the index range read here; the blocked
# heads are due in an hour).
DRAINABLE = ("select exists(select from pgclaim.records where queue = %s and status = 'running')"
             " or exists(select from pgclaim.records where queue = %s and status = 'pending'"
             " and priority > -2147483648 and run_at <= now())")


def drain_groups(url: str, batch: int, wid: str, timings: bool
                 ) -> Any:
    """The SQL API drain of a queue with groups: an empty claim ends it only when nothing
    drainable is left (another process may be completing the heads it would take next)."""
    claim = "select id, lease_token from pgclaim.claim_batch(%s, %s, %s)"
    complete = "select pgclaim.complete(%s, %s, %s)"

    def go() -> dict[str, Any]:
        done = 0
        last_done = None
        with psycopg.connect(url, autocommit=True) as conn:
            while True:
                rows = conn.execute(claim, (QUEUE, wid, batch)).fetchall()
                if not rows:
                    more = conn.execute(DRAINABLE, (QUEUE, QUEUE)).fetchone()
                    if not (more and more[0]):
                        break
                    # another process holds the heads it would take: as a worker would,
                    # wait a little rather than spin on the server's two cores
                    time.sleep(0.002)
                    continue
                done += conn.execute(complete, (wid, [r[0] for r in rows],  # type: ignore[index]
                                                [r[1] for r in rows])).fetchone()[0]
                last_done = time.monotonic()
        return {"done": done, "claim_latency": [], "last_done": last_done}

    return go


def load(url: str, n: int, groups: int, limits: bool) -> int:
    """Loads n records (over ``groups`` groups round robin, 0: none) and blocks 10 % of the
    groups behind a failing head; returns how many records the drain can hand out."""
    with connect(url) as conn:
        if limits:
            conn.execute("select pgclaim.alter_queue(%s, max_running => 1000000,"
                         " rate => 1000000, burst => 1000000)", (QUEUE,))
        chunk = 5000
        for start in range(0, n, chunk):
            k = min(chunk, n - start)
            if groups:
                conn.execute(
                    "select count(*) from pgclaim.enqueue_items(%s, (select jsonb_agg("
                    "jsonb_build_object('payload', '{}'::jsonb, 'group_key', 'g' || (i %% %s::int)))"
                    " from generate_series(%s::int, %s::int) as i))",
                    (QUEUE, groups, start, start + k - 1))
            else:
                conn.execute("select count(*) from pgclaim.enqueue_batch(%s, array(select"
                             " '{}'::jsonb from generate_series(1, %s)))", (QUEUE, k))
        blocked = 0
        if groups:
            # Every group's head in one claim; the heads of every 10th group fail with a
            # retry an hour away, the others go back untouched.
            held = conn.execute(
                "select c.id, c.lease_token, r.group_key from pgclaim.claim_batch(%s, 'setup',"
                " %s) as c join pgclaim.records as r on r.id = c.id", (QUEUE, groups)).fetchall()
            slow = {f"g{g}" for g in range(0, groups, 10)}
            for rid, token, group in held:
                if group in slow:
                    conn.execute("select pgclaim.fail('setup', %s, 'blocked for the benchmark',"
                                 " retry_after => interval '1 hour', lease_token => %s)",
                                 (rid, token))
            conn.execute("select pgclaim.release('setup', %s)",
                         ([rid for rid, _, group in held if group not in slow],))
            row = conn.execute("select count(*) from pgclaim.records where queue = %s"
                               " and group_key = any(%s)", (QUEUE, sorted(slow))).fetchone()
            assert row is not None
            blocked = int(row[0])
        conn.execute("vacuum analyze pgclaim.records")
        return n - blocked


def once(cluster: str, template: str, n: int, w: int, batch: int, groups: int,
         limits: bool, tag: str) -> float:
    """One drain; returns records per second to the last completion."""
    url = clone_db(cluster, template, f"bench_flow_{tag}")
    try:
        with connect(url) as conn:
            conn.execute("select pgclaim.create_queue(%s)", (QUEUE,))
        drainable = load(url, n, groups, limits)
        setup = drain_groups if groups else systems.drain_sql_api
        outcome = run_group(setup, [(url, batch, f"bench-flow-{i}", False) for i in range(w)])
        done = sum(r["done"] for r in outcome.results)
        if done != drainable:
            raise RuntimeError(f"{tag}: drained {done} of {drainable} records")
        last = outcome.client_last
        assert last is not None
        return drainable / last
    finally:
        drop_db(cluster, url.rsplit("/", 1)[1].split("?")[0])


def fairness(cluster: str, n: int, w: int, batch: int, fair: bool, tag: str
             ) -> tuple[float, float]:
    """One drain of n records over 1,000 groups then 10 in a small group enqueued last;
    returns the rate and the share of the drain completed when the small group was done."""
    url = clone_db(cluster, FLOW_TEMPLATE, f"bench_fair_{tag}")
    try:
        with connect(url) as conn:
            conn.execute("select pgclaim.create_queue(%s, fair => %s)", (QUEUE, fair))
            chunk = 5000
            for start in range(0, n, chunk):
                conn.execute(
                    "select count(*) from pgclaim.enqueue_items(%s, (select jsonb_agg("
                    "jsonb_build_object('payload', '{}'::jsonb, 'group_key',"
                    " 'big' || (i %% 1000)))"
                    " from generate_series(%s::int, %s::int) as i))",
                    (QUEUE, start, min(n, start + chunk) - 1))
            conn.execute(
                "select count(*) from pgclaim.enqueue_items(%s, (select jsonb_agg("
                "jsonb_build_object('payload', '{}'::jsonb, 'group_key', 'small'))"
                " from generate_series(1, 10)))", (QUEUE,))
            conn.execute("vacuum analyze pgclaim.records")
        outcome = run_group(drain_groups, [(url, batch, f"bench-fair-{i}", False)
                                           for i in range(w)])
        done = sum(r["done"] for r in outcome.results)
        if done != n + 10:
            raise RuntimeError(f"fairness {tag}: drained {done} of {n + 10} records")
        with connect(url) as conn:
            row = conn.execute(
                "select count(*) filter (where f.finished_at <= s.last)::float8 / count(*)"
                " from pgclaim.finished as f, (select max(finished_at) as last"
                " from pgclaim.finished where group_key = 'small') as s").fetchone()
        assert row is not None and outcome.client_last is not None
        return (n + 10) / outcome.client_last, float(row[0])
    finally:
        drop_db(cluster, url.rsplit("/", 1)[1].split("?")[0])


def baseline_template(cluster: str, rev: str) -> str:
    """A template with pgclaim as it was at git revision ``rev`` (its own sql/ and loader)."""
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "sql", "scripts"],
                                 check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        subprocess.run([str(Path(tmp) / "scripts" / "reload.sh"), cluster, BASELINE_TEMPLATE],
                       check=True, capture_output=True, text=True)
    return BASELINE_TEMPLATE


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--records", type=int, default=100_000)
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--baseline", help="git revision of the pgclaim to compare the ungrouped "
                   "drain with")
    args = p.parse_args(argv)
    cluster = cluster_url()
    subprocess.run([str(ROOT / "scripts" / "reload.sh"), cluster, FLOW_TEMPLATE],
                   check=True, capture_output=True, text=True)
    rows: dict[str, tuple[str, int, bool]] = {
        "ungrouped": (FLOW_TEMPLATE, 0, False),
        "limits not binding": (FLOW_TEMPLATE, 0, True),
        "1000 groups, 10 % blocked": (FLOW_TEMPLATE, 1000, False),
        "10 groups, 10 % blocked": (FLOW_TEMPLATE, 10, False),
    }
    if args.baseline:
        rows[f"ungrouped, pgclaim at {args.baseline}"] = (
            baseline_template(cluster, args.baseline), 0, False)
    samples = {name: Sample() for name in rows}
    for r in range(args.repeat):
        order = list(rows) if r % 2 == 0 else list(reversed(rows))
        for i, name in enumerate(order):
            template, groups, limits = rows[name]
            rate = once(cluster, template, args.records, args.workers, args.batch, groups,
                        limits, f"{r}_{i}")
            samples[name].add(rate)
            log(f"flow {name} run {r + 1}: {rate:,.0f}/s")
    base = samples["ungrouped"].median
    print(f"\n{args.records:,} records, W={args.workers}, batch {args.batch}, "
          f"{args.repeat} runs (median, min-max)\n")
    print("| drain | records/s | vs ungrouped |")
    print("|---|---|---|")
    for name, s in samples.items():
        print(f"| {name} | {fmt_sample(s)} | {s.median / base:.2f} |")
    fair_rows = {"fair off": False, "fair on": True}
    fair_rate = {name: Sample() for name in fair_rows}
    fair_share = {name: Sample() for name in fair_rows}
    for r in range(args.repeat):
        for name in (fair_rows if r % 2 == 0 else reversed(fair_rows)):
            rate, share = fairness(cluster, args.records, args.workers, args.batch,
                                   fair_rows[name], f"{r}_{name.split()[1]}")
            fair_rate[name].add(rate)
            fair_share[name].add(share)
            log(f"flow {name} run {r + 1}: {rate:,.0f}/s, small group done at "
                f"{share:.1%} of the drain")
    print(f"\nFairness: {args.records:,} records over 1,000 groups, then 10 records in one "
          f"small group; W={args.workers}, batch {args.batch}, {args.repeat} runs (median, "
          "min-max)\n")
    print("| queue | records/s | small group done after |")
    print("|---|---|---|")
    for name in fair_rows:
        s = fair_share[name]
        print(f"| {name} | {fmt_sample(fair_rate[name])} | {s.median:.1%} of the drain"
              f" ({s.lo:.1%}-{s.hi:.1%}) |")
    drop_db(cluster, FLOW_TEMPLATE)
    if args.baseline:
        drop_db(cluster, BASELINE_TEMPLATE)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
