"""pgclaim.run(): consumers inside PostgreSQL, through the client, as a real worker login:
effects and outcomes commit together, a handler runs with its caller's rights (never
pgclaim_owner's), and two runs at once never handle a record twice."""
from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import psycopg
import pytest

import pgclaim

HANDLER = """
create table public.sent (record_id bigint primary key, body jsonb, by_role text);
create procedure public.send(r pgclaim.claimed)
language plpgsql
as $$
begin
    insert into public.sent values (r.id, r.payload, current_user);
    if r.payload ? 'peek' then
        perform count(*) from pgclaim.records;  -- pgclaim's tables: not the caller's
    end if;
end;
$$;
"""


@pytest.fixture
def login(dsn: str) -> Iterator[str]:
    """A login that has pgclaim_worker and may write public.sent: the handler's caller."""
    name = f"pgclaim_t_run_{os.getpid()}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'drop role if exists "{name}"')
        conn.execute(f'create role "{name}" login in role pgclaim_worker')
        conn.execute(HANDLER)
        conn.execute(f'grant insert, select on public.sent to "{name}"')
        conn.execute("select pgclaim.create_queue('outbox', max_attempts => 1)")
        conn.execute("select pgclaim.enqueue_batch('outbox', array["
                     " '{\"n\": 1}', '{\"n\": 2, \"peek\": true}', '{\"n\": 3}']::jsonb[])")
    url = psycopg.conninfo.make_conninfo(dsn, user=name)
    try:
        yield url
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("drop table public.sent")
            conn.execute("drop procedure public.send(pgclaim.claimed)")
            conn.execute(f'drop owned by "{name}"')
            conn.execute(f'drop role "{name}"')


def test_run_as_a_worker_login_handler_has_the_callers_rights(login: str, dsn: str) -> None:
    with pgclaim.QueueClient(login) as client:
        rows = client.run_sql_handler("outbox", "public.send(pgclaim.claimed)", 10,
                                      timedelta(seconds=30))
    by_id = {rid: (status, error) for rid, status, error in rows}
    assert sorted(s for s, _ in by_id.values()) == ["completed", "completed", "failed"]
    [(failed_id, (_, error))] = [(i, v) for i, v in by_id.items() if v[0] == "failed"]
    assert error is not None and error.startswith("42501: permission denied for table records")
    with psycopg.connect(dsn, autocommit=True) as conn:
        sent = conn.execute("select record_id, by_role from public.sent order by 1").fetchall()
        assert [r for r, _ in sent] == sorted(i for i in by_id if i != failed_id)
        assert {role for _, role in sent} == {psycopg.conninfo.conninfo_to_dict(login)["user"]}
        assert conn.execute("select status::text, last_error from pgclaim.finished where id = %s",
                            [failed_id]).fetchone() == ("failed", error)


def test_run_in_the_callers_transaction(login: str, dsn: str) -> None:
    """With conn, nothing of the run shows before the caller commits, and a rollback leaves
    every record as it was."""
    with pgclaim.QueueClient(login) as client, psycopg.connect(login) as conn:
        assert len(client.run_sql_handler("outbox", "public.send(pgclaim.claimed)",
                                          conn=conn)) == 3
        conn.rollback()
        with psycopg.connect(dsn, autocommit=True) as check:
            assert check.execute("select count(*) from pgclaim.records where status = 'pending'"
                                 ).fetchone() == (3,)
            assert check.execute("select count(*) from public.sent").fetchone() == (0,)


def test_two_runs_at_once_share_the_records(login: str, dsn: str) -> None:
    """Two runs in open transactions at once: the second skips the first's records (their
    rows are locked), so each record is handled once."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("select pgclaim.enqueue_batch('outbox', array_fill('{}'::jsonb, array[7]))")
    first = psycopg.connect(login)
    second = psycopg.connect(login)
    try:
        a = first.execute("select id from pgclaim.run('outbox', 'public.send(pgclaim.claimed)',"
                          " 4)").fetchall()
        results: list[Any] = []
        t = threading.Thread(target=lambda: results.extend(second.execute(
            "select id from pgclaim.run('outbox', 'public.send(pgclaim.claimed)', 100)"
        ).fetchall()))
        t.start()
        t.join(60)
        assert not t.is_alive()
        first.commit()
        second.commit()
    finally:
        first.close()
        second.close()
    ids = [r[0] for r in a] + [r[0] for r in results]
    assert len(ids) == 10 and len(set(ids)) == 10
    with psycopg.connect(dsn, autocommit=True) as conn:
        assert conn.execute("select count(*) from pgclaim.records").fetchone() == (0,)
