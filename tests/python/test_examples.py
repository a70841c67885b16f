"""The examples of examples/ (plain SQL through psql, Node.js with pg, Python with bare
psycopg), each run as a subprocess against a fresh database, as the producer, worker and
admin logins a user would give them; their transcripts and the database afterwards are
checked. The Node.js example needs node and npm (its pg package is installed into
examples/node/node_modules with npm ci, from the lockfile)."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from pgdb import ROOT

EXAMPLES = ROOT / "examples"
NODE_DIR = EXAMPLES / "node"
#: the login of each role the examples act as, and the pgclaim role it is a member of
LOGINS = {"producer": "pgclaim_example_producer", "worker": "pgclaim_example_worker",
          "admin": "pgclaim_example_admin"}

#: the transcript the Python and Node.js examples both print (ids as N)
TRANSCRIPT = """\
[admin   ] created queue example_emails (3 attempts, 1 s backoff)
[producer] enqueued ids [N, N, N]
[worker  ] claimed 3 record(s):
[worker  ]   id=N attempt=1 payload={"to":"ada@example.com"}
[worker  ]   id=N attempt=1 payload={"to":"bob@example.com"}
[worker  ]   id=N attempt=1 payload={"to":"eve@example.com"}
[worker  ] complete [N, N] -> 2
[worker  ] fail N (retry_after 0) -> pending
[worker  ] claimed 1 record(s):
[worker  ]   id=N attempt=2 payload={"to":"eve@example.com"}
[worker  ] fail N (fatal) -> failed
[admin   ] queue_stats: pending=0 running=0 completed=2 failed=1
[admin   ] retry_failed -> 1
[worker  ] claimed 1 record(s):
[worker  ]   id=N attempt=1 payload={"to":"eve@example.com"}
[worker  ] complete [N] -> 1
[admin   ] queue_stats: pending=0 running=0 completed=3 failed=0
"""


def as_login(url: str, user: str) -> str:
    """``url`` with its user replaced by ``user`` (the cluster trusts loopback logins)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{user}@{parts.netloc.rsplit('@', 1)[-1]}"))


@pytest.fixture(scope="module")
def example_logins(cluster_url: str) -> Iterator[None]:
    """The three logins, made once for the module and dropped after it."""
    with psycopg.connect(cluster_url, autocommit=True) as conn:
        for role, login in LOGINS.items():
            if conn.execute("select from pg_roles where rolname = %s", [login]).fetchone():
                conn.execute(f"drop role {login}")
            conn.execute(f"create role {login} login in role pgclaim_{role}")
    yield
    with psycopg.connect(cluster_url, autocommit=True) as conn:
        for login in LOGINS.values():
            conn.execute(f"drop role if exists {login}")


@pytest.fixture
def urls(dsn: str, example_logins: None) -> dict[str, str]:
    """The URL of the fresh database for each role."""
    return {role: as_login(dsn, login) for role, login in LOGINS.items()}


def run(cmd: list[str], env: dict[str, str], cwd: Any = ROOT) -> str:
    out = subprocess.run(cmd, env={**os.environ, **env}, cwd=cwd, capture_output=True,
                         text=True, timeout=120, check=False)
    assert out.returncode == 0, f"{cmd} failed:\n{out.stdout}\n{out.stderr}"
    return out.stdout


def role_env(urls: dict[str, str]) -> dict[str, str]:
    return {"PRODUCER_URL": urls["producer"], "WORKER_URL": urls["worker"],
            "ADMIN_URL": urls["admin"], "DATABASE_URL": ""}


def check_database(conn: psycopg.Connection[Any]) -> None:
    """Three records, all completed, claimed by the worker login; the one that failed
    twice went through retry_failed (attempts reset, its last error kept)."""
    assert conn.execute("select count(*) from pgclaim.records").fetchone() == (0,)
    rows = conn.execute(
        "select f.payload ->> 'to', f.status::text, f.attempt, f.holder_role::regrole::text,"
        " f.last_error from pgclaim.finished as f where f.queue = 'example_emails'"
        " order by f.id").fetchall()
    worker = LOGINS["worker"]
    assert rows == [
        ("ada@example.com", "completed", 1, worker, None),
        ("bob@example.com", "completed", 1, worker, None),
        ("eve@example.com", "completed", 1, worker, "mailbox does not exist"),
    ]
    assert conn.execute("select completed, failed from pgclaim.queue_stats"
                        " where queue = 'example_emails'").fetchone() == (3, 0)


def normalised(stdout: str) -> str:
    """The transcript with record ids (which differ from run to run) as N."""
    stdout = re.sub(r"\[[\d, ]+\]", lambda m: re.sub(r"\d+", "N", m.group()), stdout)
    return re.sub(r"(id=|fail )\d+", r"\1N", stdout)


def test_python_example(urls: dict[str, str], conn: psycopg.Connection[Any]) -> None:
    script = str(EXAMPLES / "python" / "lifecycle.py")
    out = run([sys.executable, script], role_env(urls))
    assert normalised(out) == TRANSCRIPT
    check_database(conn)
    # a second run starts over: the queue of the first is dropped
    again = run([sys.executable, script], role_env(urls))
    assert normalised(again) == (
        "[admin   ] dropped the queue example_emails of an earlier run\n" + TRANSCRIPT)
    check_database(conn)


def node_ready() -> None:
    """Installs pg into examples/node from the lockfile when it is not there yet."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node or npm not installed (apt-get install nodejs npm, or make deps as"
                    " root): the Node.js example was not run")
    wanted = json.loads((NODE_DIR / "package.json").read_text())["dependencies"]["pg"]
    installed = NODE_DIR / "node_modules" / "pg" / "package.json"
    if not installed.exists() or json.loads(installed.read_text())["version"] != wanted:
        out = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR,
                             capture_output=True, text=True, timeout=300, check=False)
        assert out.returncode == 0, f"npm ci in examples/node failed:\n{out.stderr}"


def test_node_example(urls: dict[str, str], conn: psycopg.Connection[Any]) -> None:
    node_ready()
    out = run(["node", "lifecycle.js"], role_env(urls), cwd=NODE_DIR)
    assert normalised(out) == TRANSCRIPT
    check_database(conn)


def test_sql_example(urls: dict[str, str], conn: psycopg.Connection[Any]) -> None:
    out = run(["psql", "-X", "-v", "ON_ERROR_STOP=1",
               *(f"-v{role}={url}" for role, url in urls.items()),
               "-f", str(EXAMPLES / "sql" / "lifecycle.sql"), urls["admin"]], {})
    lines = [" ".join(line.replace("|", " ").split()) for line in out.splitlines()]
    steps = [line for line in lines if line.startswith("== ")]
    assert steps == [
        "== admin: create the queue (3 attempts, 1 s backoff)",
        "== producer: enqueue three records in one statement",
        "== worker: claim a batch of up to 10",
        "== worker: complete two of them (with their lease tokens)",
        "== worker: the third fails; retry_after 0 puts it back to pending at once",
        "== worker: claim it again (attempt 2) and fail it for good (fatal)",
        "== admin: the queue now holds two completed records and one dead letter",
        "== admin: retry the failed record (attempts reset)",
        "== worker: claim it once more and complete it",
        "== admin: every record completed",
    ]

    def after(step: str) -> list[str]:
        """The lines a step printed (headers and rules left out)."""
        start = lines.index(step) + 1
        end = next((i for i in range(start, len(lines)) if lines[i].startswith("== ")),
                   len(lines))
        return [line for line in lines[start:end] if line and not set(line) <= {"-", "+", " "}]

    assert after("== worker: claim a batch of up to 10") == [
        "id attempt payload", "1 1 {\"to\": \"ada@example.com\"}",
        "2 1 {\"to\": \"bob@example.com\"}", "3 1 {\"to\": \"eve@example.com\"}"]
    assert after("== worker: complete two of them (with their lease tokens)") == [
        "completed", "2"]
    assert after("== worker: the third fails; retry_after 0 puts it back to pending at once") \
        == ["new_status", "pending"]
    assert after("== worker: claim it again (attempt 2) and fail it for good (fatal)") == [
        "id attempt payload", "3 2 {\"to\": \"eve@example.com\"}", "new_status", "failed"]
    assert after("== admin: the queue now holds two completed records and one dead letter") \
        == ["queue pending running completed failed", "example_emails 0 0 2 1"]
    assert after("== admin: retry the failed record (attempts reset)") == ["retried", "1"]
    assert after("== admin: every record completed") == [
        "queue pending running completed failed", "example_emails 0 0 3 0"]
    check_database(conn)
