"""Shared code of the attack suite: the login roles it connects as, connections to a fresh
database as those logins, a digest of everything pgclaim keeps, and small assertions.

Every attack runs from a real login: ``psycopg.connect(dsn, user=<login>)`` on the
throwaway cluster's trust authentication, never only ``SET ROLE`` from a superuser.
"""
from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from pgdb import ROOT

#: what the fuzz tests did (function calls by outcome), printed at the end of the run
FUZZ_STATS: dict[str, dict[str, int]] = {}

# --------------------------------------------------------------------------- roles

#: login -> the pgclaim (or group) roles it is granted
LOGINS: dict[str, tuple[str, ...]] = {
    "pgclaim_t_producer_a": ("pgclaim_producer",),
    "pgclaim_t_worker_a": ("pgclaim_worker",),
    "pgclaim_t_worker_b": ("pgclaim_worker",),
    "pgclaim_t_admin": ("pgclaim_admin",),
    # per-queue grants: two applications that both produce and consume, and a third
    # that gets its rights through a group role
    "pgclaim_t_app_a": ("pgclaim_producer", "pgclaim_worker"),
    "pgclaim_t_app_b": ("pgclaim_producer", "pgclaim_worker"),
    "pgclaim_t_app_c": ("pgclaim_producer", "pgclaim_worker", "pgclaim_t_group"),
    # one login that is a member of two worker roles (SET ROLE picks one)
    "pgclaim_t_dual": ("pgclaim_t_team_x", "pgclaim_t_team_y"),
}
#: group roles (NOLOGIN) -> the pgclaim roles they are granted
GROUPS: dict[str, tuple[str, ...]] = {
    "pgclaim_t_group": (),
    "pgclaim_t_team_x": ("pgclaim_worker",),
    "pgclaim_t_team_y": ("pgclaim_worker",),
}

PRODUCER = "pgclaim_t_producer_a"
WORKER_A = "pgclaim_t_worker_a"
WORKER_B = "pgclaim_t_worker_b"
ADMIN = "pgclaim_t_admin"
APP_A, APP_B, APP_C = "pgclaim_t_app_a", "pgclaim_t_app_b", "pgclaim_t_app_c"
GROUP = "pgclaim_t_group"
DUAL, TEAM_X, TEAM_Y = "pgclaim_t_dual", "pgclaim_t_team_x", "pgclaim_t_team_y"


def _ensure_role(conn: psycopg.Connection[Any], name: str, login: bool,
                 member_of: Sequence[str]) -> None:
    exists = conn.execute("select 1 from pg_catalog.pg_roles where rolname = %s",
                          (name,)).fetchone()
    attrs = ("login" if login else "nologin") + (
        " nosuperuser nocreatedb nocreaterole noreplication nobypassrls inherit")
    if exists:
        conn.execute(f'alter role "{name}" {attrs}')
    else:
        conn.execute(f'create role "{name}" {attrs}')
    for role in member_of:
        conn.execute(f'grant "{role}" to "{name}"')


def ensure_roles(cluster_url: str) -> None:
    """Creates (or brings back to their intended shape) every role of the suite."""
    with psycopg.connect(cluster_url, autocommit=True) as conn:
        for name, member_of in GROUPS.items():
            _ensure_role(conn, name, False, member_of)
        for name, member_of in LOGINS.items():
            _ensure_role(conn, name, True, member_of)


def drop_roles(cluster_url: str, names: Sequence[str]) -> None:
    """Drops roles of the suite (they own nothing outside the databases already dropped).

    A role still granted something in a database of another run of the suite on the same
    cluster stays: that run drops it when it ends.
    """
    with psycopg.connect(cluster_url, autocommit=True) as conn:
        for name in names:
            try:
                conn.execute(f'drop role if exists "{name}"')
            except psycopg.errors.DependentObjectsStillExist:
                pass


# --------------------------------------------------------------------------- digest

#: every record, unfinished (pgclaim.records) or finished (pgclaim.finished): same columns
ALL_RECORDS = "(select * from pgclaim.records union all select * from pgclaim.finished)"

#: everything a call could change: records (unfinished and finished), completion counters,
#: queues, workers, config, per-queue grants and the id sequence (a refused call must not
#: even draw an id). As tests/sql's digest.
DIGEST_SQL = """
select pg_catalog.concat_ws('/',
    (select pg_catalog.md5(coalesce(pg_catalog.string_agg(r::text, ',' order by r.id), ''))
        from pgclaim.records as r),
    (select pg_catalog.md5(coalesce(pg_catalog.string_agg(f::text, ',' order by f.id), ''))
        from pgclaim.finished as f),
    (select pg_catalog.md5(coalesce(pg_catalog.string_agg(
        t::text, ',' order by t.queue, t.slot), ''))
        from pgclaim.queue_totals as t),
    (select pg_catalog.md5(coalesce(pg_catalog.string_agg(q::text, ',' order by q.queue), ''))
        from pgclaim.queues as q),
    (select pg_catalog.md5(
        coalesce(pg_catalog.string_agg(w::text, ',' order by w.worker_id), ''))
        from pgclaim.workers as w),
    (select c::text from pgclaim.config as c),
    (select pg_catalog.md5(coalesce(pg_catalog.string_agg(
        g::text, ',' order by g.queue, g.privilege, g.grantee), ''))
        from pgclaim.queue_grants as g),
    (select coalesce(
        pg_catalog.pg_sequence_last_value('pgclaim.records_id_seq'::regclass)::text, 'none'))
)
"""


# --------------------------------------------------------------------------- database


@dataclass
class SecDb:
    """A fresh pgclaim database: a superuser connection and connections as logins."""

    dsn: str
    su: psycopg.Connection[Any]
    _open: list[psycopg.Connection[Any]] = field(default_factory=list)

    def login(self, user: str, *, autocommit: bool = True,
              dsn: str | None = None) -> psycopg.Connection[Any]:
        """A new real connection as login ``user`` (closed when the test ends)."""
        conn = psycopg.connect(dsn or self.dsn, user=user, autocommit=autocommit)
        self._open.append(conn)
        return conn

    def digest(self) -> str:
        return str(one(self.su, DIGEST_SQL))

    def rows(self, sql: str, args: Any = None) -> list[tuple[Any, ...]]:
        return self.su.execute(sql, args).fetchall()

    def record(self, rid: int) -> tuple[Any, ...]:
        """The whole row of a record (unfinished or finished), read as the superuser."""
        row = self.su.execute(f"select r.* from {ALL_RECORDS} as r where r.id = %s",
                              (rid,)).fetchone()
        assert row is not None
        return tuple(row)

    def enqueue(self, queue: str, n: int = 1, **kw: Any) -> list[int]:
        """Enqueues ``n`` records as the superuser; returns their ids."""
        ids = []
        for i in range(n):
            args = {"queue": queue, "payload": psycopg.types.json.Jsonb({"n": i}), **kw}
            names = ", ".join(f"{k} => %({k})s" for k in args)
            ids.append(int(one(self.su, f"select pgclaim.enqueue({names})", args)))
        return ids

    def close(self) -> None:
        for conn in self._open:
            conn.close()


def one(conn: psycopg.Connection[Any], sql: str, args: Any = None) -> Any:
    """The first column of the first row of ``sql``."""
    row = conn.execute(sql, args).fetchone()
    assert row is not None, sql
    return row[0]


def claim(conn: psycopg.Connection[Any], queue: str, worker: str, n: int = 10,
          lease: str | None = None) -> tuple[list[int], list[int]]:
    """claim_batch on ``conn``; returns the ids and their lease tokens."""
    rows = conn.execute(
        "select id, lease_token from pgclaim.claim_batch("
        "queue => %s, worker_id => %s, batch_size => %s, lease => %s::pg_catalog.interval)",
        (queue, worker, n, lease)).fetchall()
    return [r[0] for r in rows], [r[1] for r in rows]


@contextlib.contextmanager
def refused(sqlstate: str) -> Iterator[list[psycopg.Error]]:
    """Asserts the block raises a server error with ``sqlstate``; yields a list that holds
    the error afterwards."""
    caught: list[psycopg.Error] = []
    try:
        yield caught
    except psycopg.Error as exc:
        assert exc.sqlstate == sqlstate, f"expected {sqlstate}, got {exc.sqlstate}: {exc}"
        caught.append(exc)
    else:
        raise AssertionError(f"expected SQLSTATE {sqlstate}, the call succeeded")


def error_text(exc: psycopg.Error) -> str:
    """Every text an error carries to the client: message, detail, hint and context."""
    d = exc.diag
    return "\n".join(x or "" for x in (d.message_primary, d.message_detail, d.message_hint,
                                       d.context, str(exc)))


def mutant(path: str, old: str, new: str) -> str:
    """The text of sql/``path`` with ``old`` replaced by ``new`` (which must be there): a
    deliberately broken function, to show that a check does fail."""
    text = (ROOT / "sql" / path).read_text()
    assert old in text, f"sql/{path} no longer contains {old!r}: update the mutant"
    return text.replace(old, new)


# --------------------------------------------------------------------------- server log


def server_log(su: psycopg.Connection[Any]) -> Path | None:
    """The file the cluster writes its log to, when this machine can read it.

    With a logging collector the server says where (``pg_current_logfile()``); the
    throwaway cluster of scripts/cluster.sh logs through ``pg_ctl -l`` into the file named
    in .cluster/env (when its port is the one connected to).
    """
    current = one(su, "select pg_catalog.pg_current_logfile()")
    if current:
        path = Path(current)
        if not path.is_absolute():
            path = Path(one(su, "select pg_catalog.current_setting('data_directory')")) / path
        return path if path.exists() else None
    env = ROOT / ".cluster" / "env"
    if not env.exists():
        return None
    values = dict(line.split("=", 1) for line in env.read_text().splitlines() if "=" in line)
    port = one(su, "select pg_catalog.current_setting('port')")
    if values.get("PGCLAIM_PGPORT") != str(port):
        return None
    path = Path(values.get("PGCLAIM_BASE", "/nonexistent")) / "server.log"
    return path if path.exists() else None


def wait_for_log(su: psycopg.Connection[Any], path: Path, start: int, tag: str) -> str:
    """The log written since byte ``start``, read once the server logged ``tag`` (so that
    everything before it is in the file)."""
    assert re.fullmatch(r"[0-9a-z]+", tag), tag
    su.execute(f"do $$ begin raise log 'pgclaim-security-log-mark {tag}'; end $$")
    deadline = time.monotonic() + 10
    while True:
        with path.open("rb") as f:
            f.seek(start)
            text = f.read().decode("utf-8", "replace")
        if f"pgclaim-security-log-mark {tag}" in text or time.monotonic() > deadline:
            return text
        time.sleep(0.05)

