"""Passwords never shown: every DSN form redacted, real failing and succeeding connections
whose logs and command output must not carry the password."""
from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest

import pgclaim
from pgclaim import _dsn, cli
from pgclaim.migrate import yoyo_url

HERE = Path(__file__).resolve().parent
PGCLAIM = str(Path(sys.executable).with_name("pgclaim"))
SECRET = "Zq7secretPW"


@pytest.fixture(autouse=True)
def keep_logging() -> Iterator[None]:
    log = logging.getLogger("pgclaim")
    saved = (log.handlers[:], log.level, log.propagate)
    yield
    log.handlers[:], log.level, log.propagate = saved[0], saved[1], saved[2]


@pytest.mark.parametrize(("dsn", "shown"), [
    ("postgresql://u:secret@h/db", "postgresql://u:***@h/db"),
    ("postgres://u:secret@h:5432/db?sslmode=require",
     "postgres://u:***@h:5432/db?sslmode=require"),
    ("postgresql://:secret@h/db", "postgresql://:***@h/db"),
    ("postgresql://u:p%40ss%2Fword@h/db", "postgresql://u:***@h/db"),
    ("postgresql://u@h/db", "postgresql://u@h/db"),
    ("postgresql://h1:5432,h2:5433/db?target_session_attrs=any",
     "postgresql://h1:5432,h2:5433/db?target_session_attrs=any"),
    ("postgresql://h/db?password=secret", "postgresql://h/db?password=***"),
    ("postgresql://h/db?password=secret&sslmode=require",
     "postgresql://h/db?password=***&sslmode=require"),
    ("postgresql://h/db?sslmode=require&password=secret",
     "postgresql://h/db?sslmode=require&password=***"),
    ("postgresql://h/db?pass%77ord=secret", "postgresql://h/db?pass%77ord=***"),
    ("postgresql://h/db?sslpassword=secret", "postgresql://h/db?sslpassword=***"),
    ("postgresql://h/db?user=a@b", "postgresql://h/db?user=a@b"),
    ("postgresql+psycopg://u:secret@h/db", "postgresql+psycopg://u:***@h/db"),
    # unencoded characters a URL should escape: masked all the same
    ("postgresql://u:p@ss@h/db", "postgresql://u:***@h/db"),
    ("postgresql://u:pa/ss@h/db", "postgresql://u:***@h/db"),
    ("postgresql://u:pa?ss@h/db", "postgresql://u:***@h/db"),
    ("postgresql://u:pa&x=1@h/db", "postgresql://u:***@h/db"),
    ("host=h password=secret", "host=h password=***"),
    ("host=h password=secret dbname=d", "host=h password=*** dbname=d"),
    ("host=h password = secret dbname=d", "host=h password = *** dbname=d"),
    ("host=h password='a b' user=x", "host=h password=*** user=x"),
    ("password='it\\'s a secret' host=h", "password=*** host=h"),
    ("host=h password=se\\ cret port=5", "host=h password=*** port=5"),
    ("host=h sslpassword=secret", "host=h sslpassword=***"),
    ("host=h dbname=d", "host=h dbname=d"),
    # key=value DSNs libpq cannot parse: still masked
    ("host=h password='secret", "host=h password=***"),
    ("host=h password secret", "host=h password ***"),
    ("", ""),
])
def test_redact_every_form(dsn: str, shown: str) -> None:
    assert _dsn.redact(dsn) == shown
    for secret in ("secret", "a b", "s a secret", "se\\ cret", "p@ss", "pa/ss", "pa?ss",
                   "pa&x", "p%40ss"):
        assert secret not in shown


def test_secrets_and_scrub() -> None:
    assert _dsn.secrets_of("postgresql://u:p%40ss%2Fword@h/db") >= {"p%40ss%2Fword",
                                                                      "p@ss/word"}
    assert _dsn.secrets_of("host=h password='a b c'") >= {"a b c"}
    assert _dsn.secrets_of("host=h dbname=d") == set()
    dsn = "postgresql://u:hunter22@h/db"
    text = f"could not use {dsn}: password hunter22 refused"
    assert _dsn.scrub(text, dsn) == ("could not use postgresql://u:***@h/db: "
                                     "password *** refused")
    # strings too short to be told apart from ordinary text are left alone
    assert _dsn.scrub("a b", "host=h password=a") == "a b"


@pytest.mark.parametrize("dsn", [
    f"postgresql://u:se%zz{SECRET}@127.0.0.1:1/db",      # bad percent-encoding
    f"host=127.0.0.1 port=1 password='{SECRET}",          # unterminated quote
    f"postgresql://u:{SECRET[:4]}/{SECRET[4:]}@127.0.0.1/db",  # a "/" read as a port
])
def test_a_malformed_dsn_is_refused_without_its_password(dsn: str) -> None:
    with pytest.raises(pgclaim.InvalidArgument) as info:
        pgclaim.QueueClient(dsn)
    message = str(info.value)
    assert "***" in message
    for fragment in (SECRET, SECRET[:4], SECRET[4:]):
        assert fragment not in message


def test_libpq_itself_would_echo_the_password() -> None:
    # What the check above guards against: libpq's parse error repeats the password.
    with pytest.raises(psycopg.Error, match=SECRET):
        psycopg.connect(f"postgresql://u:se%zz{SECRET}@127.0.0.1:1/db")


def test_migrate_message_names_the_scheme_not_the_password() -> None:
    with pytest.raises(ValueError) as info:
        yoyo_url(f"host=h password={SECRET}")
    assert "postgresql://" in str(info.value) and SECRET not in str(info.value)
    assert "password=***" in str(info.value)
    assert yoyo_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"


def test_failing_connection_logs_no_password(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, the pool's included
    dsns = [f"postgresql://postgres:{SECRET}@127.0.0.1:1/none",
            f"postgresql://postgres@127.0.0.1:1/none?password={SECRET}",
            f"host=127.0.0.1 port=1 user=postgres password='{SECRET} x'"]
    policy = pgclaim.RetryPolicy(attempts=2, base=0.01, cap=0.01, deadline=None)
    for dsn in dsns:
        with pgclaim.QueueClient(dsn, retry=policy, pool_timeout=0.3, connect_timeout=1) as c:
            with pytest.raises(pgclaim.TransientError) as info:
                c.enqueue("q", {})
            assert SECRET not in str(info.value)
    messages = [r.getMessage() for r in caplog.records]
    assert any("gave up" in m for m in messages)  # the retry code did log
    assert any(r.name.startswith("psycopg.pool") for r in caplog.records)  # and the pool
    assert not [m for m in messages if SECRET in m]
    assert SECRET not in caplog.text


def reachable_forms(dsn: str) -> list[str]:
    """The same database as ``dsn``, with a password in each DSN form (the test cluster
    trusts local connections, so the password is ignored and the connection succeeds)."""
    url = urlsplit(dsn)
    db = url.path.lstrip("/")
    return [
        f"postgresql://{url.username}:{SECRET}@{url.hostname}:{url.port}/{db}",
        f"postgresql://{url.username}@{url.hostname}:{url.port}/{db}?password={SECRET}",
        (f"host={url.hostname} port={url.port} dbname={db} user={url.username} "
         f"password='{SECRET} and more'"),
    ]


def test_cli_output_carries_no_password(dsn: str, conn: psycopg.Connection[Any],
                                        capsys: pytest.CaptureFixture[str],
                                        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    conn.execute("select pgclaim.create_queue('q')")
    conn.execute("select pgclaim.enqueue_batch('q', array['1','2']::jsonb[])")
    for form in reachable_forms(dsn):
        assert cli.main(["doctor", "--database", form]) in (0, 1)
        out = capsys.readouterr().out
        assert "server reachable" in out and "***" in out
        assert cli.main(["worker", "workers_fixture.handlers:noop", "--queue", "q",
                         "--until-empty", "--poll-interval", "0.2", "--database", form]) == 0
        err = capsys.readouterr().err
        assert "worker done on" in err and "***" in err
        for text in (out, err):
            assert SECRET not in text
    refused = [f"postgresql://postgres:{SECRET}@127.0.0.1:1/none",
               f"host=127.0.0.1 port=1 password={SECRET}",
               f"postgresql://u:se%zz{SECRET}@127.0.0.1:1/db"]
    for form in refused:
        assert cli.main(["doctor", "--database", form]) == 2
        assert cli.main(["health", "--json", "--database", form]) == 2
        captured = capsys.readouterr()
        assert "fail" in captured.out and SECRET not in captured.out + captured.err
        assert cli.main(["migrate", "--database", form]) == 2
        captured = capsys.readouterr()
        assert "pgclaim: error" in captured.err and SECRET not in captured.out + captured.err
    assert SECRET not in caplog.text


def test_worker_process_output_carries_no_password(dsn: str,
                                                   conn: psycopg.Connection[Any]) -> None:
    conn.execute("select pgclaim.create_queue('q')")
    conn.execute("select pgclaim.enqueue_batch('q', array['1','2','3']::jsonb[])")
    for form in reachable_forms(dsn)[:1] + reachable_forms(dsn)[2:]:
        proc = subprocess.run(
            [PGCLAIM, "worker", "workers_fixture.handlers:noop", "--queue", "q",
             "--until-empty", "-vv", "--database", form],
            capture_output=True, text=True, check=False, timeout=60,
            env={**os.environ, "PYTHONPATH": str(HERE)})
        assert proc.returncode == 0, proc.stderr
        assert "registered" in proc.stderr and "***" in proc.stderr
        assert SECRET not in proc.stdout + proc.stderr
