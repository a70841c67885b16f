"""Database helpers shared by the test modules: URLs, fresh databases, the project root."""
from __future__ import annotations

import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parents[2]


def db_url(cluster: str, name: str) -> str:
    """The URL of database ``name`` on the cluster whose URL is ``cluster``."""
    return cluster.rsplit("/", 1)[0] + "/" + name


def create_database(cluster_url: str, template: str) -> str:
    """Creates a fresh database from ``template``; returns its name."""
    name = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(cluster_url, autocommit=True) as conn:
        conn.execute(f'create database "{name}" template "{template}"')
    return name


def drop_database(cluster_url: str, name: str) -> None:
    """Drops database ``name``, disconnecting whoever is still on it."""
    with psycopg.connect(cluster_url, autocommit=True) as conn:
        conn.execute(f'drop database if exists "{name}" with (force)')


def freeze_clock(conn: psycopg.Connection[Any], ts: datetime | str) -> None:
    """Replaces pgclaim._now() in this (test) database with a frozen clock at ``ts``."""
    lit = ts.isoformat() if isinstance(ts, datetime) else ts
    body = f"select '{lit}'::timestamptz"
    conn.execute(
        "create or replace function pgclaim._now() returns timestamptz language sql volatile"
        f" set search_path = pg_catalog, pg_temp as $clk${body}$clk$"
    )


#: test-only: every record, unfinished (pgclaim.records) or finished (pgclaim.finished),
#: for tests that read a record's state wherever pgclaim keeps it
EVERY_RECORD_VIEW = """
create view public.every_record as
select * from pgclaim.records
union all
select * from pgclaim.finished
"""


def add_test_views(url: str) -> None:
    """Adds the test-only views (``public.every_record``) to the pgclaim database at ``url``."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(EVERY_RECORD_VIEW)
