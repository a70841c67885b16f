"""Handlers run by ``pgclaim worker`` in the tests.

``record`` notes every call in ``public.processed`` of the database named by
``PGCLAIM_FIXTURE_DSN`` (its own connection per thread), then sleeps ``payload["sleep"]``
seconds (default ``PGCLAIM_FIXTURE_SLEEP``, else 0). ``gated`` notes the call the same way,
then waits until the test opens the gate (a row in ``public.gate``): a test then knows
exactly which handlers run, whatever the machine's speed.
"""
from __future__ import annotations

import os
import threading
import time
from typing import Any

import psycopg

from pgclaim import Claimed

_local = threading.local()

CREATE = (
    "create table if not exists public.processed ("
    " record_id bigint not null, attempt int not null, pid int not null,"
    " at timestamptz not null default clock_timestamp());"
    " create table if not exists public.gate (opened_at timestamptz not null default now())"
)
OPEN_GATE = "insert into public.gate default values"


def _conn() -> psycopg.Connection[Any]:
    conn: psycopg.Connection[Any] | None = getattr(_local, "conn", None)
    if conn is None or conn.closed:
        conn = psycopg.connect(os.environ["PGCLAIM_FIXTURE_DSN"], autocommit=True)
        _local.conn = conn
    return conn


def record(rec: Claimed) -> None:
    """Notes the call, then sleeps."""
    _conn().execute("insert into public.processed (record_id, attempt, pid) values (%s, %s, %s)",
                    [rec.id, rec.attempt, os.getpid()])
    payload = rec.payload if isinstance(rec.payload, dict) else {}
    time.sleep(float(payload.get("sleep", os.environ.get("PGCLAIM_FIXTURE_SLEEP", "0"))))


def gated(rec: Claimed) -> None:
    """Notes the call, then waits (at most 120 s) until the gate is open."""
    conn = _conn()
    conn.execute("insert into public.processed (record_id, attempt, pid) values (%s, %s, %s)",
                 [rec.id, rec.attempt, os.getpid()])
    deadline = time.monotonic() + 120
    while conn.execute("select 1 from public.gate limit 1").fetchone() is None:
        if time.monotonic() > deadline:
            raise TimeoutError("the gate was never opened")
        time.sleep(0.02)


def noop(rec: Claimed) -> None:
    """Does nothing: every record succeeds."""
