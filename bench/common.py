"""Shared pieces of the benchmark suite: the cluster, databases, counters and statistics."""
from __future__ import annotations

import os
import statistics
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from math import isnan
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parents[1]
PREFIX = "bench_"


def cluster_url() -> str:
    """The maintenance URL of the cluster: PGCLAIM_BENCH_URL, else the throwaway cluster."""
    url = os.environ.get("PGCLAIM_BENCH_URL")
    if url:
        return url
    return subprocess.run(
        [str(ROOT / "scripts" / "cluster.sh"), "start"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()


def db_url(cluster: str, name: str) -> str:
    """The URL of database ``name`` on the cluster whose maintenance URL is ``cluster``."""
    base, _, rest = cluster.rpartition("/")
    query = ""
    if "?" in rest:
        query = "?" + rest.split("?", 1)[1]
    return f"{base}/{name}{query}"


def admin(cluster: str, *statements: str) -> None:
    """Runs statements on the maintenance database, autocommit."""
    with psycopg.connect(cluster, autocommit=True) as conn:
        for stmt in statements:
            conn.execute(stmt)  # type: ignore[arg-type]


def drop_db(cluster: str, name: str) -> None:
    """Drops one of the suite's databases."""
    assert name.startswith(PREFIX), name
    admin(cluster, f'drop database if exists "{name}" with (force)')


def load_pgclaim(cluster: str, name: str) -> None:
    """(Re)creates database ``name`` and loads pgclaim into it from sql/."""
    assert name.startswith(PREFIX), name
    subprocess.run(
        [str(ROOT / "scripts" / "reload.sh"), cluster, name],
        check=True, capture_output=True, text=True,
    )


def clone_db(cluster: str, template: str, name: str) -> str:
    """Creates database ``name`` as a copy of ``template``; returns its URL."""
    drop_db(cluster, name)
    for attempt in range(20):
        try:
            admin(cluster, f'create database "{name}" template "{template}"')
            break
        except psycopg.errors.ObjectInUse:
            # The template is briefly in use (autovacuum, a closing connection).
            time.sleep(0.2 * (attempt + 1))
    else:
        raise RuntimeError(f"template {template} stays in use")
    return db_url(cluster, name)


@contextmanager
def connect(url: str) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit connection."""
    with psycopg.connect(url, autocommit=True) as conn:
        yield conn


def rss_mb() -> float:
    """Resident set size of this process in MB (VmRSS)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


@dataclass
class Counters:
    """Commits and top-level statements of one database, from the cumulative statistics."""

    commits: int
    statements: int


def counters(url: str) -> Counters:
    """Reads xact_commit (pg_stat_database) and pg_stat_statements calls of the database."""
    with connect(url) as conn:
        conn.execute("select pg_stat_clear_snapshot()")
        row = conn.execute(
            "select d.xact_commit,"
            " (select coalesce(sum(s.calls), 0) from pg_stat_statements as s"
            "  where s.dbid = d.datid)"
            " from pg_stat_database as d where d.datname = current_database()"
        ).fetchone()
    assert row is not None
    return Counters(int(row[0]), int(row[1]))


def counters_settled(url: str, before: Counters, wait: float = 0.5) -> Counters:
    """Counters after the backends flushed their statistics (at most once a second)."""
    time.sleep(wait)
    return counters(url)


@dataclass
class Sample:
    """Repeated measurements of one figure."""

    values: list[float] = field(default_factory=list)

    def add(self, value: float) -> None:
        """Adds one measurement."""
        self.values.append(value)

    @property
    def median(self) -> float:
        """The median, or NaN with no value."""
        return statistics.median(self.values) if self.values else float("nan")

    @property
    def lo(self) -> float:
        """The smallest value."""
        return min(self.values) if self.values else float("nan")

    @property
    def hi(self) -> float:
        """The largest value."""
        return max(self.values) if self.values else float("nan")


def percentile(values: Sequence[float], q: float) -> float:
    """The q-quantile (0..1) of values, nearest rank."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q * len(ordered) + 0.5) - 1))
    return ordered[rank]


def fmt(value: float, digits: int = 0) -> str:
    """A number with thousands separators, or '-' for NaN."""
    if isnan(value):  # NaN
        return "-"
    return f"{value:,.{digits}f}"


def fmt_sample(s: Sample, digits: int = 0) -> str:
    """median (min-max) of a sample."""
    if not s.values:
        return "-"
    if len(s.values) == 1:
        return fmt(s.median, digits)
    return f"{fmt(s.median, digits)} ({fmt(s.lo, digits)}-{fmt(s.hi, digits)})"


def ratio(a: Sample, b: Sample) -> float:
    """Ratio of medians a/b, NaN when either is missing."""
    if not a.values or not b.values or b.median == 0:
        return float("nan")
    return a.median / b.median


def log(msg: str) -> None:
    """Progress on stderr, so the tables on stdout stay clean."""
    import sys

    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)
