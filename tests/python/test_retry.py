"""Retry rules: the policy's backoff, the classification, and retries against a real server."""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

import pgclaim
from pgclaim import errors
from pgclaim.errors import Kind, classify
from pgclaim.retry import Attempt, RetryPolicy, call_with_retry


def pg_error(state: str, message: str = "boom") -> psycopg.Error:
    try:
        cls = psycopg.errors.lookup(state)
    except KeyError:  # our own codes arrive as DatabaseError carrying the SQLSTATE
        cls = type("Custom", (psycopg.DatabaseError,), {"sqlstate": state})
    return cls(message)


# -- the policy -----------------------------------------------------------------------------

def test_backoff_is_capped_exponential_with_jitter() -> None:
    none = RetryPolicy(base=0.1, cap=1.0, jitter="none")
    assert [none.backoff(n) for n in range(1, 7)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    full = RetryPolicy(base=0.1, cap=1.0, jitter="full")
    equal = RetryPolicy(base=0.1, cap=1.0, jitter="equal")
    for n in range(1, 8):
        ceiling = min(1.0, 0.1 * 2 ** (n - 1))
        assert full.backoff(n, lambda: 0.0) == 0.0
        assert full.backoff(n, lambda: 1.0) == pytest.approx(ceiling)
        assert equal.backoff(n, lambda: 0.0) == pytest.approx(ceiling / 2)
        for _ in range(20):
            assert 0 <= full.backoff(n) <= ceiling
            assert ceiling / 2 <= equal.backoff(n) <= ceiling
    assert len(list(RetryPolicy(attempts=4).delays())) == 3


@pytest.mark.parametrize("kwargs", [{"attempts": 0}, {"base": -1}, {"jitter": "half"}])
def test_policy_rejects_bad_settings(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)


# -- classification -------------------------------------------------------------------------

@pytest.mark.parametrize(
    "state", ["57P01", "57P03", "53300", "53100", "53200", "40001", "40P01", "55P03"])
def test_server_reported_rollbacks_are_retryable(state: str) -> None:
    assert classify(pg_error(state)) is Kind.ROLLED_BACK
    assert isinstance(errors.translate(pg_error(state)), pgclaim.TransientError)


def test_classification_of_the_rest() -> None:
    assert classify(pg_error("57014")) is Kind.TIMEOUT
    lost = psycopg.OperationalError("server closed the connection unexpectedly")
    assert classify(lost, sent=True) is Kind.LOST
    assert classify(lost, sent=False) is Kind.ROLLED_BACK
    assert classify(psycopg.OperationalError("connection refused")) is Kind.LOST
    assert classify(pg_error("08006")) is Kind.LOST
    assert classify(psycopg.OperationalError("something else entirely")) is Kind.PERMANENT
    assert classify(pg_error("22023")) is Kind.PERMANENT
    assert classify(ValueError("x")) is Kind.PERMANENT
    err = errors.translate(pg_error("PC003", "not yours"))
    assert type(err) is pgclaim.NotHolder and err.sqlstate == "PC003"
    unknown = errors.translate(psycopg.DatabaseError("odd"))
    assert type(unknown) is pgclaim.PgclaimError and unknown.sqlstate is None


# -- the loop, with a fake statement --------------------------------------------------------

class Fake:
    """A statement that fails with ``failures`` (in turn) and then returns "done"."""

    def __init__(self, *failures: BaseException, sent: bool = True) -> None:
        self.failures = list(failures)
        self.sent = sent
        self.calls = 0

    def __call__(self, attempt: Attempt) -> str:
        self.calls += 1
        attempt.sent = self.sent
        if self.failures:
            raise self.failures.pop(0)
        return "done"


FAST = RetryPolicy(attempts=4, base=0.001, cap=0.002, deadline=None)


def retry(fn: Fake, *, idempotent: bool, policy: RetryPolicy = FAST, **kw: Any) -> str:
    return call_with_retry(fn, policy=policy, operation="op", idempotent=idempotent,
                           queue="q", sleep=lambda s: None, **kw)


def test_retries_then_succeeds_and_logs_fields(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="pgclaim")
    fn = Fake(pg_error("40001"), pg_error("40P01"))
    assert retry(fn, idempotent=False) == "done" and fn.calls == 3
    assert len(caplog.records) == 2
    for rec in caplog.records:
        assert rec.instance_id == pgclaim.instance_id()  # type: ignore[attr-defined]
        assert rec.queue == "q"  # type: ignore[attr-defined]
        assert rec.operation == "op"  # type: ignore[attr-defined]
    assert [r.sqlstate for r in caplog.records] == ["40001", "40P01"]  # type: ignore[attr-defined]


def test_gives_up_after_attempts(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="pgclaim")
    fn = Fake(*[pg_error("53300") for _ in range(10)])
    with pytest.raises(pgclaim.TransientError) as info:
        retry(fn, idempotent=True)
    assert info.value.sqlstate == "53300" and fn.calls == 4
    assert caplog.records[-1].levelno == logging.ERROR
    assert "gave up" in caplog.records[-1].getMessage()


def test_deadline_bounds_the_call() -> None:
    now = [0.0]
    fn = Fake(*[pg_error("57P03") for _ in range(10)])
    policy = RetryPolicy(attempts=100, base=1.0, cap=1.0, deadline=3.5, jitter="none")

    def sleep(s: float) -> None:
        now[0] += s

    with pytest.raises(pgclaim.TransientError):
        call_with_retry(fn, policy=policy, operation="op", idempotent=True, sleep=sleep,
                        clock=lambda: now[0])
    assert fn.calls == 4 and now[0] == 3.0


def test_lost_connection_retried_only_when_idempotent() -> None:
    def lost() -> psycopg.Error:
        return psycopg.OperationalError("consuming input failed: server closed the connection")

    fn = Fake(lost())
    assert retry(fn, idempotent=True) == "done" and fn.calls == 2
    fn = Fake(lost())
    with pytest.raises(pgclaim.OutcomeUnknown) as info:
        retry(fn, idempotent=False)
    assert fn.calls == 1 and info.value.sqlstate is None
    fn = Fake(lost(), sent=False)  # never reached the server: safe for anything
    assert retry(fn, idempotent=False) == "done"


def test_statement_timeout_retried_only_when_idempotent() -> None:
    fn = Fake(pg_error("57014"))
    assert retry(fn, idempotent=True) == "done"
    fn = Fake(pg_error("57014"))
    with pytest.raises(pgclaim.TransientError) as info:
        retry(fn, idempotent=False)
    assert fn.calls == 1 and info.value.sqlstate == "57014"
    assert not isinstance(info.value, pgclaim.OutcomeUnknown)


def test_permanent_errors_and_foreign_exceptions_pass_at_once() -> None:
    fn = Fake(pg_error("PC001", "unknown queue"))
    with pytest.raises(pgclaim.QueueNotFound):
        retry(fn, idempotent=True)
    assert fn.calls == 1
    fn = Fake(KeyError("x"))
    with pytest.raises(KeyError):
        retry(fn, idempotent=True)


# -- against the real server ----------------------------------------------------------------

@pytest.fixture
def fast_client(dsn: str) -> Iterator[pgclaim.QueueClient]:
    # No deadline: the number of tries is then the same however slow the machine is.
    policy = RetryPolicy(attempts=3, base=0.05, cap=0.1, deadline=None)
    with pgclaim.QueueClient(dsn, retry=policy, statement_timeout=0.3, lock_timeout=None) as c:
        c.create_queue("q")
        yield c


def test_statement_timeout_on_a_locked_record(fast_client: pgclaim.QueueClient, dsn: str,
                                              caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="pgclaim")
    rid = fast_client.enqueue("q", {})
    claimed = fast_client.claim("q", "w", 1)
    with psycopg.connect(dsn) as locker:
        locker.execute("select 1 from pgclaim.records where id = %s for update", [rid])
        with pytest.raises(pgclaim.TransientError) as info:
            fast_client.complete("w", [rid], [claimed[0].lease_token], queue="q")
        assert info.value.sqlstate == "57014"
        retries = [r for r in caplog.records if r.operation == "complete"]  # type: ignore
        assert len(retries) == 3  # two retries and the give-up
        caplog.clear()
        with pytest.raises(pgclaim.TransientError):
            fast_client.fail("w", rid, "x", queue="q")  # not idempotent: no retry
        assert len(caplog.records) == 1 and "not retried" in caplog.records[0].getMessage()
    assert fast_client.complete("w", [rid], [claimed[0].lease_token]) == 1


class _OnRetry(logging.Handler):
    """Calls ``action`` once, at the first retry the client logs."""

    def __init__(self, action: Callable[[], None]) -> None:
        super().__init__(logging.WARNING)
        self.action: Callable[[], None] | None = action
        self.retries: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if "retry" in record.getMessage():
            self.retries.append(getattr(record, "sqlstate", None) or "")
            if self.action is not None:
                action, self.action = self.action, None
                action()


def test_lock_timeout_retried_until_the_lock_goes(dsn: str) -> None:
    policy = RetryPolicy(attempts=5, base=0.05, cap=0.1, deadline=None)
    log = logging.getLogger("pgclaim")
    with pgclaim.QueueClient(dsn, retry=policy, lock_timeout=0.1) as c:
        c.create_queue("q")
        rid = c.enqueue("q", {})
        claimed = c.claim("q", "w", 1)
        locker = psycopg.connect(dsn)
        locker.execute("select 1 from pgclaim.records where id = %s for update", [rid])
        # The lock goes when the client logs its first retry: the first try always meets
        # the lock, the second never does.
        on_retry = _OnRetry(locker.close)
        log.addHandler(on_retry)
        try:
            # fail is not idempotent, but 55P03 means the statement did not run: retried
            assert c.fail("w", rid, "x", lease_token=claimed[0].lease_token) == "pending"
        finally:
            log.removeHandler(on_retry)
            locker.close()
        assert on_retry.retries == ["55P03"]


def test_terminated_backend_is_retried(dsn: str, cluster_url: str,
                                       caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="pgclaim")
    policy = RetryPolicy(attempts=3, base=0.05, cap=0.1, deadline=None)
    with pgclaim.QueueClient(dsn, retry=policy, max_size=1) as c:
        c.create_queue("q")
        pid = c.run(lambda k: k.info.backend_pid)
        killed: list[int] = []

        def kill() -> None:  # once the statement is seen sleeping on the server
            with psycopg.connect(cluster_url, autocommit=True) as admin:
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    if admin.execute("select 1 from pg_stat_activity where pid = %s"
                                     " and wait_event = 'PgSleep'", [pid]).fetchone():
                        killed.append(admin.execute("select pg_terminate_backend(%s)",
                                                    [pid]).fetchone()[0])
                        return
                    time.sleep(0.01)

        killer = threading.Thread(target=kill)
        killer.start()
        # On the first backend the statement sleeps until it is terminated; the retry, on
        # a new backend, does not sleep.
        c.run(lambda k: k.execute(
            "select pg_sleep(case when pg_backend_pid() = %s then 60 else 0 end)", [pid]),
            operation="sleep", idempotent=True)
        killer.join(30)
        assert killed == [True]
        assert c.run(lambda k: k.info.backend_pid) != pid
    warned = [r for r in caplog.records if getattr(r, "operation", None) == "sleep"]
    assert warned and warned[0].sqlstate in ("57P01", None)  # type: ignore[attr-defined]


def test_unreachable_server_gives_up(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="pgclaim")
    policy = RetryPolicy(attempts=2, base=0.01, cap=0.01, deadline=None)
    with pgclaim.QueueClient("postgresql://postgres@127.0.0.1:1/none", retry=policy,
                             pool_timeout=0.3, connect_timeout=1) as c:
        with pytest.raises(pgclaim.TransientError) as info:
            c.enqueue("q", {})  # not idempotent, but never sent: retried
        assert info.value.sqlstate is None
    msgs = [r.getMessage() for r in caplog.records if r.name == "pgclaim"]
    assert any("retry 1" in m for m in msgs) and any("gave up" in m for m in msgs)
