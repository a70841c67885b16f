"""The pgclaim command line: install, produce, work, inspect and operate a pgclaim database.

Every command takes ``--database URL`` (default: ``DATABASE_URL``, then libpq's ``PG*``
variables), shown with its password masked wherever it is printed; every command that acts
on one queue takes it as ``--queue``/``-q``. Exit status: 0 success, 1 a problem worth a look
(``health`` degraded, ``doctor`` warnings), 2 failure (an error, ``health`` failing or
unreachable, ``doctor`` failures).
"""
from __future__ import annotations

import argparse
import importlib
import inspect
import json
import logging
import os
import re
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO

import psycopg

from . import _dsn, _sql
from ._signals import StopSignals
from ._version import package_version, required_schema_version
from .client import QueueClient, QueueStats, Schedule, default_dsn
from .errors import PgclaimError, translate
from .instance import instance_id
from .migrate import migrate
from .multi import MultiWorker
from .retry import RetryPolicy
from .worker import Worker

#: the oldest PostgreSQL major version pgclaim supports
MIN_SERVER_VERSION = 130000

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> timedelta:
    """``"30"``, ``"30s"``, ``"500ms"``, ``"5m"``, ``"2h"``, ``"1d"`` as a ``timedelta``."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (try 30s, 5m, 2h, 1d)")
    return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2) or "s"])


class _Fields(logging.Filter):
    """Gives every log record the ``instance_id`` and ``queue`` fields the format names."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "instance_id"):
            record.instance_id = instance_id()
        if not hasattr(record, "queue"):
            record.queue = None
        return True


def _setup_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_Fields())
    handler.setFormatter(logging.Formatter(
        "%(asctime)s %(levelname)s [%(instance_id)s queue=%(queue)s] %(message)s"))
    root = logging.getLogger("pgclaim")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _client(dsn: str) -> QueueClient:
    return QueueClient(dsn, max_size=2)


def _shown(dsn: str) -> str:
    """``dsn`` as printed: its passwords masked (``_dsn.redact``)."""
    return _dsn.redact(dsn) or "(libpq environment)"


def _connect(dsn: str, name: str) -> psycopg.Connection[Any]:
    """An autocommit connection for a one-off check; a ``PgclaimError`` if none can be had."""
    _dsn.check(dsn)
    try:
        return psycopg.connect(dsn, autocommit=True, connect_timeout=5,
                               application_name=f"pgclaim {name}")
    except psycopg.Error as exc:
        raise translate(exc) from exc


def _defaults(fn: Callable[..., Any]) -> dict[str, Any]:
    """The default of every parameter of ``fn`` that has one: the CLI's defaults are read
    from the Python API, never typed again."""
    return {name: p.default for name, p in inspect.signature(fn).parameters.items()
            if p.default is not inspect.Parameter.empty}


# -- commands -----------------------------------------------------------------------------

def cmd_migrate(args: argparse.Namespace, dsn: str) -> int:
    _progress("pgclaim: applying migrations ...")
    try:
        applied = migrate(dsn, adopt_existing=args.adopt_existing)
    except ValueError as exc:  # not a URL yoyo can take
        raise PgclaimError(str(exc)) from None
    except psycopg.Error as exc:
        raise translate(exc) from exc
    print(f"pgclaim: applied {len(applied)} migration(s)"
          + (": " + ", ".join(applied) if applied else ""))
    return 0


def _flag(text: str) -> bool:
    """A boolean queue setting on the command line: true/false, yes/no, on/off, 1/0."""
    value = text.strip().lower()
    if value in ("true", "yes", "on", "1"):
        return True
    if value in ("false", "no", "off", "0"):
        return False
    raise argparse.ArgumentTypeError(f"not a boolean: {text!r}")


_SETTING_TYPES: dict[str, Callable[[str], Any]] = {
    "interval": parse_duration, "integer": int, "double precision": float, "boolean": _flag}


def cmd_create_queue(args: argparse.Namespace, dsn: str) -> int:
    options: dict[str, Any] = {}
    for name in _sql.QUEUE_SETTINGS:
        value = getattr(args, name)
        if value is not None:
            options[name] = value
    with _client(dsn) as client:
        client.create_queue(args.queue, **options)
    print(f"pgclaim: queue {args.queue} ready")
    return 0


def _json_lines(stream: TextIO) -> Iterator[Any]:
    for n, line in enumerate(stream, 1):
        if line.strip():
            try:
                yield json.loads(line)
            except json.JSONDecodeError as exc:
                raise SystemExit(f"pgclaim: line {n} of stdin is not JSON: {exc}") from exc


def _chunks(items: Iterator[Any], size: int) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def cmd_enqueue(args: argparse.Namespace, dsn: str) -> int:
    run_at = datetime.now(UTC) + args.delay if args.delay else None
    with _client(dsn) as client:
        if args.payloads:
            payloads = []
            for n, text in enumerate(args.payloads, 1):
                try:
                    payloads.append(json.loads(text))
                except json.JSONDecodeError as exc:
                    # (the text itself is not repeated: payloads are not printed)
                    hint = " (with --queue, every argument is a payload)" if (
                        args.queue_option is not None) else ""
                    raise SystemExit(
                        f"pgclaim: payload {n} is not JSON: {exc}{hint}") from exc
            if args.dedup_key is not None:
                if len(payloads) != 1:
                    raise SystemExit("pgclaim: --dedup-key takes exactly one payload")
                ids = [client.enqueue(args.queue, payloads[0], priority=args.priority,
                                      run_at=run_at, dedup_key=args.dedup_key)]
            else:
                ids = client.enqueue_many(args.queue, payloads, priority=args.priority,
                                          run_at=run_at)
            for i in ids:
                print(i)
            return 0
        total = 0
        for chunk in _chunks(_json_lines(sys.stdin), args.batch):
            total += len(client.enqueue_many(args.queue, chunk, priority=args.priority,
                                             run_at=run_at))
            _progress(f"pgclaim: enqueued {total} record(s) ...")
        print(f"pgclaim: enqueued {total} record(s) into {args.queue}")
    return 0


def load_handler(spec: str) -> Callable[..., Any]:
    """The function named by ``module:function`` (the current folder is importable)."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise SystemExit(f"pgclaim: handler must be MODULE:FUNCTION, got {spec!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    module = importlib.import_module(module_name)
    target: Any = module
    for part in attr.split("."):
        target = getattr(target, part)
    if not callable(target):
        raise SystemExit(f"pgclaim: {spec} is not callable")
    return target  # type: ignore[no-any-return]


def cmd_worker(args: argparse.Namespace, dsns: Sequence[str]) -> int:
    handler = load_handler(args.handler)
    metrics = None
    if args.metrics_port is not None:
        # The worker's own metrics: its handlers' durations (the handler is wrapped, the
        # loop is not touched) and its process; the database's come from pgclaim exporter.
        from . import exporter
        registry = exporter.worker_registry()
        handler = exporter.timed_handler(handler, exporter.handler_histogram(registry))
        metrics = exporter.MetricsServer(registry, args.metrics_port, args.metrics_host)
        _progress(f"pgclaim: worker metrics on http://{args.metrics_host}:{metrics.port}"
                  "/metrics")
    try:
        return _run_worker(args, dsns, handler)
    finally:
        if metrics is not None:
            metrics.close()


def _run_worker(args: argparse.Namespace, dsns: Sequence[str],
                handler: Callable[..., Any]) -> int:
    options: dict[str, Any] = {
        "concurrency": args.concurrency, "batch_size": args.batch_size, "lease": args.lease,
        "heartbeat_every": args.heartbeat_every, "poll_interval": args.poll_interval,
        "min_wake_interval": args.min_wake_interval, "reclaim_every": args.reclaim_every,
        "report_delay": args.report_delay, "grace": args.grace,
        "log_payloads": args.log_payloads, "transactional": args.transactional,
    }
    client_options: dict[str, Any] = {
        # a transactional handler holds a connection of its own while it runs
        "max_size": 3 + (args.concurrency if args.transactional else 0), "pool_timeout": 5.0,
        "retry": RetryPolicy(attempts=4, base=0.2, cap=2.0, deadline=10.0),
    }
    if args.transaction_pooling:
        # What a pooler in transaction mode needs (docs/pgbouncer.md): no server-side
        # prepared statements, no settings in the startup packet.
        client_options.update(prepare_threshold=None, statement_timeout=None)
    listen_dsns: list[str | None] = list(args.listen_dsn or [None] * len(dsns))
    if len(dsns) == 1:
        with QueueClient(dsns[0], **client_options) as client:
            stats = Worker(client, args.queue, handler, listen_dsn=listen_dsns[0],
                           **options).run(until_empty=args.until_empty)
        results = [stats]
    else:
        results = MultiWorker(dsns, args.queue, handler, client_options=client_options,
                              listen_dsns=listen_dsns, **options).run(
                                  until_empty=args.until_empty)
    for dsn, stats in zip(dsns, results, strict=True):
        _progress(f"pgclaim: worker done on {_shown(dsn)}: claimed {stats.claimed}, "
                  f"completed {stats.completed}, retried {stats.retried}, failed "
                  f"{stats.failed}, released {stats.released}")
    if any(stats.abandoned for stats in results):
        # Handlers still running after the grace period (their records were released):
        # do not wait for them at interpreter exit.
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return 0


def _age(value: timedelta | None) -> str:
    if value is None:
        return "-"
    seconds = value.total_seconds()
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{seconds / 60:.1f}m"
    return f"{seconds / 3600:.1f}h"


def format_stats(rows: Sequence[QueueStats]) -> str:
    """``QueueStats`` rows as an aligned text table."""
    header = ["queue", "paused", "pending", "scheduled", "running", "completed", "failed",
              "cancelled", "oldest_pending", "done_last_min", "blocked"]
    table = [header] + [[
        r.queue, "yes" if r.paused else "no", str(r.pending), str(r.scheduled), str(r.running),
        str(r.completed), str(r.failed), str(r.cancelled), _age(r.oldest_pending_age),
        str(r.completed_last_minute), str(r.blocked)] for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = []
    for row in table:
        cells = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:],
                                                                          strict=True)]
        lines.append("  ".join(cells).rstrip())
    if not rows:
        lines.append("(no queue)")
    return "\n".join(lines)


def cmd_stats(args: argparse.Namespace, dsn: str) -> int:
    with _client(dsn) as client:
        rows = client.stats()
    if args.json:
        print(json.dumps([{
            **r.__dict__,
            "oldest_pending_age": None if r.oldest_pending_age is None
            else r.oldest_pending_age.total_seconds()} for r in rows], indent=2))
    else:
        print(format_stats(rows))
    return 0


def format_schedules(rows: Sequence[Schedule]) -> str:
    """``Schedule`` rows as an aligned text table (times in UTC, ISO 8601)."""
    def when(t: datetime | None) -> str:
        return "-" if t is None else t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    table = [("name", "queue", "timing", "last slot", "next slot")] + [
        (r.name, r.queue,
         f"cron {r.cron} ({r.timezone})" if r.cron is not None
         else f"every {r.every.total_seconds():g}s" if r.every is not None else "-",
         when(r.last_slot), when(r.next_slot)) for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                     for row in table)


def cmd_schedule(args: argparse.Namespace, dsn: str) -> int:
    with _client(dsn) as client:
        if args.schedule_command == "add":
            try:
                payload = json.loads(args.payload)
            except json.JSONDecodeError as exc:
                raise SystemExit(f"pgclaim: --payload is not JSON: {exc}") from exc
            next_slot = client.schedule(
                args.name, args.queue, payload, cron=args.cron, every=args.every,
                priority=args.priority, max_attempts=args.max_attempts,
                group_key=args.group_key, timezone=args.timezone)
            print(f"pgclaim: schedule {args.name} enqueues into {args.queue}; next slot "
                  f"{next_slot.astimezone(UTC).isoformat()}")
            return 0
        if args.schedule_command == "remove":
            if client.unschedule(args.name):
                print(f"pgclaim: schedule {args.name} removed")
                return 0
            print(f"pgclaim: no schedule {args.name}", file=sys.stderr)
            return 1
        rows = client.schedules()
    if args.json:
        print(json.dumps([{
            **r.__dict__, "every": None if r.every is None else r.every.total_seconds()}
            for r in rows], indent=2, default=str))
    else:
        print(format_schedules(rows))
    return 0


def cmd_health(args: argparse.Namespace, dsn: str) -> int:
    try:
        with _connect(dsn, "health") as conn:
            # What pgclaim.health() says: the schema's version is doctor's business.
            doc = QueueClient(conn, check_schema=False).health(
                max_xact_age=args.max_xact_age, max_pending_age=args.max_pending_age)
    except PgclaimError as exc:
        doc = {"status": "failing", "reachable": False, "reasons": [_dsn.scrub(str(exc), dsn)],
               "sqlstate": exc.sqlstate}
    if args.json:
        print(json.dumps(doc, indent=2, default=str))
    else:
        reasons = "; ".join(doc.get("reasons") or [])
        print(f"{doc['status']}" + (f": {reasons}" if reasons else ""))
    return {"ok": 0, "degraded": 1}.get(str(doc.get("status")), 2)


def _serve_until_signal(what: str, url: str) -> None:
    """Blocks until SIGTERM or SIGINT, saying where ``what`` is served."""
    stop = threading.Event()
    with StopSignals(lambda _name: stop.set(), lambda _name: stop.set()):
        _progress(f"pgclaim: {what} on {url} (stop with SIGTERM or Ctrl-C)")
        stop.wait()


def cmd_exporter(args: argparse.Namespace, dsn: str) -> int:
    from . import exporter
    # A scrape must answer soon: one quick retry, then pgclaim_up 0.
    client = QueueClient(dsn, max_size=2, statement_timeout=10.0,
                         retry=RetryPolicy(attempts=2, base=0.1, cap=0.5, deadline=5.0))
    with client, exporter.MetricsServer(exporter.database_registry(client), args.port,
                                        args.host) as server:
        _serve_until_signal("exporter", f"http://{args.host}:{server.port}/metrics")
    return 0


def cmd_dashboard(args: argparse.Namespace, dsn: str) -> int:
    from . import dashboard
    with QueueClient(dsn, max_size=4, statement_timeout=10.0,
                     retry=RetryPolicy(attempts=2, base=0.1, cap=0.5, deadline=5.0)) as client:
        board = dashboard.Dashboard(client, allow_actions=args.allow_actions,
                                    refresh=args.refresh, sample_every=args.sample_every,
                                    database=_shown(dsn))
        dashboard.serve(board, args.host, args.port, started=lambda url: _progress(
            f"pgclaim: dashboard on {url} ("
            + ("admin actions on" if args.allow_actions else "read-only")
            + "; stop with SIGTERM or Ctrl-C)"))
    return 0


def cmd_reclaim(args: argparse.Namespace, dsn: str) -> int:
    with _client(dsn) as client:
        n = client.reclaim_orphans(args.max_records)
    print(f"pgclaim: took back {n} record(s)")
    return 0


def cmd_retry(args: argparse.Namespace, dsn: str) -> int:
    finished_after = datetime.now(UTC) - args.since if args.since is not None else None
    with _client(dsn) as client:
        n = client.retry_failed(args.queue, args.ids or None, error_like=args.error_like,
                                finished_after=finished_after, min_attempt=args.min_attempt)
    print(f"pgclaim: {n} failed record(s) of {args.queue} are pending again")
    return 0


def cmd_purge(args: argparse.Namespace, dsn: str) -> int:
    total = 0
    with _client(dsn) as client:
        while True:
            n = client.purge(args.queue, args.older_than, args.chunk)
            total += n
            if n:
                _progress(f"pgclaim: purged {total} record(s) ...")
            if n < args.chunk:
                break
    print(f"pgclaim: purged {total} finished record(s) of {args.queue}")
    return 0


# -- doctor -------------------------------------------------------------------------------

_SETTINGS = [
    "autovacuum", "fsync", "idle_in_transaction_session_timeout", "max_connections",
    "synchronous_commit", "statement_timeout",
]


def _advice(name: str, setting: str) -> tuple[str, str] | None:
    """(level, advice) for a server setting worth changing, else ``None``."""
    if name == "autovacuum" and setting != "on":
        return "fail", "autovacuum is off: the records table bloats with every claim"
    if name == "fsync" and setting != "on":
        return "warn", "fsync is off: a crash can lose committed records (tests only)"
    if name == "idle_in_transaction_session_timeout" and setting == "0":
        return "warn", ("no idle_in_transaction_session_timeout: a forgotten transaction "
                        "holds back vacuum; consider '5min'")
    if name == "max_connections" and int(setting) < 50:
        return "warn", f"max_connections is {setting}: every worker process needs a few"
    if name == "synchronous_commit" and setting == "off":
        return "warn", ("synchronous_commit is off: completions of the last moments before "
                        "a crash may be lost (records then run again)")
    return None


def cmd_doctor(args: argparse.Namespace, dsn: str) -> int:
    checks: list[tuple[str, str, str]] = []

    def check(level: str, name: str, detail: str) -> None:
        checks.append((level, name, detail))
        print(f"{level:4}  {name:22} {detail}")

    try:
        conn = _connect(dsn, "doctor")
    except PgclaimError as exc:
        check("fail", "server reachable",
              _dsn.scrub((str(exc).strip().splitlines() or [""])[0], dsn))
        return 2
    with conn:
        check("ok", "server reachable", _shown(dsn))
        num, version = conn.execute(_sql.SERVER_VERSION).fetchone() or (0, "?")
        check("ok" if num >= MIN_SERVER_VERSION else "fail", "server version",
              version.split(",")[0])
        installed = bool((conn.execute(_sql.SCHEMA_INSTALLED).fetchone() or (False,))[0])
        if not installed:
            check("fail", "schema", "pgclaim is not installed: run `pgclaim migrate`")
        else:
            try:
                got = QueueClient(conn, check_schema=False).check_schema()
            except PgclaimError as exc:  # SchemaMismatch: older than this client needs
                check("fail", "schema version", str(exc))
            else:
                check("ok", "schema version",
                      f"{got} (this client needs {required_schema_version()} or later)")
        tap = conn.execute(_sql.PGTAP_AVAILABLE).fetchone()
        if tap is None:
            check("warn", "pgtap", "not available (needed only to run the SQL tests)")
        else:
            check("ok", "pgtap", f"available {tap[0]}"
                  + (f", installed {tap[1]}" if tap[1] else ""))
        for name, setting, unit in conn.execute(_sql.SETTINGS, {"names": _SETTINGS}):
            advice = _advice(name, setting)
            shown = f"{setting}{unit or ''}"
            if advice is None:
                check("ok", name, shown)
            else:
                check(advice[0], name, f"{shown}: {advice[1]}")
    levels = {level for level, _, _ in checks}
    return 2 if "fail" in levels else 1 if "warn" in levels else 0


# -- parser -------------------------------------------------------------------------------

def version_text() -> str:
    """What ``pgclaim --version`` prints: the package's version and the schema it needs."""
    return (f"pgclaim {package_version()} (needs schema version {required_schema_version()} "
            "or later)")


def _add_queue(p: argparse.ArgumentParser, *, positional: bool = False) -> None:
    """``--queue``/``-q``, the one way every command names its queue; ``positional`` keeps
    the older ``COMMAND QUEUE`` form working as an alias."""
    p.add_argument("-q", "--queue", dest="queue_option", metavar="QUEUE", help="the queue")
    if positional:
        p.add_argument("queue_positional", nargs="?", metavar="QUEUE",
                       help="the queue, as with --queue (an older form)")


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except json.JSONDecodeError:
        return False
    return True


def _resolve_queue(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Sets ``args.queue`` from ``--queue`` or the positional alias; both with different
    values is an error. ``enqueue``'s positionals are ``[QUEUE] JSON ...``: with ``--queue``
    they are all payloads, except a first one that repeats the queue's name."""
    option: str | None = args.queue_option
    positional: str | None
    if args.command == "enqueue":
        items = list(args.payloads)
        names_queue = bool(items) and (
            option is None or (items[0] == option and not _is_json(items[0])))
        positional = items.pop(0) if names_queue else None
        args.payloads = items
    else:
        positional = getattr(args, "queue_positional", None)
    if option is not None and positional is not None and option != positional:
        parser.error(f"{args.command}: the queue is given twice, as --queue {option} and as "
                     f"{positional}")
    queue = option if option is not None else positional
    if queue is None:
        parser.error(f"{args.command}: the queue is missing (--queue QUEUE)")
    args.queue = queue


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``pgclaim`` command."""
    def options(dest_prefix: str) -> argparse.ArgumentParser:
        common = argparse.ArgumentParser(add_help=False)
        common.add_argument("--database", action="append", dest=dest_prefix + "database",
                            metavar="URL", help="libpq URL (default: DATABASE_URL, then PG* "
                            "variables); worker takes it several times")
        common.add_argument("-v", "--verbose", action="count", default=0,
                            dest=dest_prefix + "verbose", help="log more (-vv: debug)")
        return common

    common = options("")
    parser = argparse.ArgumentParser(prog="pgclaim", description=__doc__,
                                     parents=[options("global_")],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=version_text())
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, help: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, description=help, parents=[common])

    p = add("migrate", "install or upgrade the pgclaim schema")
    p.add_argument("--adopt-existing", action="store_true",
                   help="take over a schema pgclaim and pgclaim_* roles that pgclaim did not "
                        "make (refused otherwise; see docs/install.md)")

    p = add("create-queue", "create a queue (an existing queue keeps its settings); a setting "
            "not given takes pgclaim.create_queue's default")
    _add_queue(p, positional=True)
    for name, kind in _sql.QUEUE_SETTINGS.items():
        p.add_argument("--" + name.replace("_", "-"), type=_SETTING_TYPES[kind])

    enqueue = _defaults(QueueClient.enqueue)
    p = add("enqueue", "add records: JSON payloads as arguments, or JSON lines on stdin")
    _add_queue(p)
    p.add_argument("payloads", nargs="*", metavar="[QUEUE] JSON",
                   help="payloads (the first argument is the queue when --queue is not given)")
    p.add_argument("--priority", type=int, default=enqueue["priority"])
    p.add_argument("--delay", type=parse_duration, help="due after this long (e.g. 10m)")
    p.add_argument("--dedup-key", help="with one payload: add it only if no unfinished record "
                   "of the queue has this key")
    p.add_argument("--batch", type=int, default=1000, help="records per statement from stdin")

    worker = _defaults(Worker)
    p = add("worker", "process a queue with a handler function MODULE:FUNCTION")
    p.add_argument("handler", metavar="MODULE:FUNCTION")
    _add_queue(p)
    p.add_argument("--concurrency", type=int, default=worker["concurrency"],
                   help="handlers at once (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=worker["batch_size"],
                   help="records per claim (default: the concurrency)")
    p.add_argument("--lease", type=parse_duration, default=worker["lease"],
                   help="lease of claimed records (default: the queue's)")
    p.add_argument("--heartbeat-every", type=float, default=worker["heartbeat_every"],
                   metavar="SECONDS", help="default: %(default)s")
    p.add_argument("--poll-interval", type=float, default=worker["poll_interval"],
                   metavar="SECONDS", help="default: %(default)s")
    p.add_argument("--min-wake-interval", type=float, default=worker["min_wake_interval"],
                   metavar="SECONDS", help="after a claim that found nothing, no claim on a "
                   "notification before this long (default: %(default)s)")
    p.add_argument("--reclaim-every", type=float, default=worker["reclaim_every"],
                   metavar="SECONDS", help="default: %(default)s")
    p.add_argument("--report-delay", type=float, default=worker["report_delay"],
                   metavar="SECONDS", help="how long an outcome may wait for others to share "
                   "its report while handlers run (default: %(default)s)")
    p.add_argument("--grace", type=float, default=worker["grace"], metavar="SECONDS",
                   help="on SIGTERM, how long running handlers may take; a second SIGTERM stops "
                   "waiting (default: %(default)s)")
    p.add_argument("--log-payloads", action="store_true", default=worker["log_payloads"],
                   help="log a failed record's payload and error text (default: only its id, "
                   "attempt and the exception's type)")
    p.add_argument("--transactional", action="store_true", default=worker["transactional"],
                   help="call the handler as handler(record, conn) and complete its record in "
                   "the same transaction as its writes")
    p.add_argument("--until-empty", action="store_true",
                   help="stop when no record is due and none is running")
    p.add_argument("--transaction-pooling", action="store_true",
                   help="--database goes through a pooler in transaction mode such as "
                   "PgBouncer: no prepared statements, no statement_timeout in the startup "
                   "packet (set it on the role)")
    p.add_argument("--listen-dsn", action="append", metavar="URL",
                   help="a direct connection to the server for LISTEN only, when --database "
                   "goes through a pooler in transaction mode such as PgBouncer (without it "
                   "such a worker polls every --poll-interval); once per --database, in the "
                   "same order")
    p.add_argument("--metrics-port", type=int, metavar="PORT",
                   help="serve this worker's Prometheus metrics (handler durations, process) "
                   "on PORT (0: any free port); needs pgclaim[metrics]")
    p.add_argument("--metrics-host", default="0.0.0.0", metavar="ADDRESS",
                   help="address for --metrics-port (default: %(default)s)")

    p = add("exporter", "serve the database's Prometheus metrics (pgclaim.metrics()) on "
            "/metrics; needs pgclaim[metrics]")
    p.add_argument("--port", type=int, default=9187, help="default: %(default)s (0: any free)")
    p.add_argument("--host", default="0.0.0.0", metavar="ADDRESS",
                   help="address to listen on (default: %(default)s)")

    p = add("stats", "per-queue counts")
    p.add_argument("--json", action="store_true")

    health = _defaults(QueueClient.health)
    p = add("health", "health check for probes: exit 0 ok, 1 degraded, 2 failing or unreachable")
    p.add_argument("--json", action="store_true")
    p.add_argument("--max-xact-age", type=parse_duration, default=health["max_xact_age"])
    p.add_argument("--max-pending-age", type=parse_duration, default=health["max_pending_age"])

    p = add("dashboard", "serve a web page showing queues, workers, stuck records and "
            "failures; needs pgclaim[dashboard]")
    p.add_argument("--port", type=int, default=8080, help="default: %(default)s (0: any free)")
    p.add_argument("--host", default="127.0.0.1", metavar="ADDRESS",
                   help="address to listen on (default: %(default)s; put it behind a reverse "
                   "proxy with authentication, see docs/monitoring.md)")
    p.add_argument("--allow-actions", action="store_true",
                   help="offer retry failed, cancel, pause and resume (needs a login in "
                   "pgclaim_admin; each asks for a confirmation)")
    p.add_argument("--refresh", type=float, default=5.0, metavar="SECONDS",
                   help="how often the page refreshes (default: %(default)s)")
    p.add_argument("--sample-every", type=float, default=10.0, metavar="SECONDS",
                   help="how often the counters are sampled for rates and the plot "
                   "(default: %(default)s)")

    p = add("reclaim", "take back records with an expired lease or a dead worker")
    p.add_argument("--max-records", type=int,
                   default=_defaults(QueueClient.reclaim_orphans)["max_records"])

    p = add("retry", "put failed records back to pending: all of the queue's, or those every "
            "option given picks")
    _add_queue(p, positional=True)
    p.add_argument("--id", dest="ids", type=int, action="append", metavar="ID")
    p.add_argument("--error-like", metavar="PATTERN",
                   help="only those whose error matches this LIKE pattern (e.g. '%%timeout%%')")
    p.add_argument("--since", type=parse_duration, metavar="DURATION",
                   help="only those that failed within this long (e.g. 1h)")
    p.add_argument("--min-attempt", type=int, metavar="N",
                   help="only those that failed on attempt N or later")

    p = add("purge", "delete finished records past retention (or --older-than)")
    _add_queue(p, positional=True)
    p.add_argument("--older-than", type=parse_duration, default=None)
    p.add_argument("--chunk", type=int, default=10000, help="records deleted per statement")

    add("doctor", "check the server, the schema and settings worth changing")

    schedule = _defaults(QueueClient.schedule)
    p = sub.add_parser("schedule", help="periodic schedules (pgclaim_admin): add, list, remove",
                       description="periodic schedules: each enqueues one record at every slot "
                       "of a cron expression or every interval (see docs/sql.md)")
    actions = p.add_subparsers(dest="schedule_command", required=True, metavar="ACTION")
    p = actions.add_parser("add", parents=[common], help="create or replace a schedule",
                           description="create or replace a schedule; same timing: it keeps "
                           "its next slot")
    p.add_argument("name")
    p.add_argument("--queue", "-q", required=True)
    timing = p.add_mutually_exclusive_group(required=True)
    timing.add_argument("--cron", metavar="EXPR",
                        help="five fields: minute hour day-of-month month day-of-week")
    timing.add_argument("--every", type=parse_duration, metavar="DURATION",
                        help="e.g. 30s, 5m, 1h")
    p.add_argument("--payload", default="{}", metavar="JSON", help="default: {}")
    p.add_argument("--priority", type=int, default=schedule["priority"])
    p.add_argument("--max-attempts", type=int, default=schedule["max_attempts"])
    p.add_argument("--group-key", default=schedule["group_key"])
    p.add_argument("--timezone", default=schedule["timezone"],
                   help="the cron expression's zone (default: %(default)s)")
    p = actions.add_parser("list", parents=[common], help="every schedule, its last and "
                           "next slot")
    p.add_argument("--json", action="store_true")
    p = actions.add_parser("remove", parents=[common], help="remove a schedule (its records "
                           "stay); exit 1 when there is none")
    p.add_argument("name")
    return parser


_COMMANDS: dict[str, Callable[[argparse.Namespace, str], int]] = {
    "migrate": cmd_migrate, "create-queue": cmd_create_queue, "enqueue": cmd_enqueue,
    "stats": cmd_stats, "health": cmd_health, "reclaim": cmd_reclaim, "retry": cmd_retry,
    "purge": cmd_purge, "doctor": cmd_doctor, "exporter": cmd_exporter,
    "dashboard": cmd_dashboard,
    "schedule": cmd_schedule,
}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``pgclaim`` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if hasattr(args, "queue_option"):
        _resolve_queue(parser, args)
    verbose = args.global_verbose + args.verbose
    _setup_logging(verbose + (1 if args.command == "worker" else 0))
    dsns: list[str] = (args.global_database or []) + (args.database or []) or [default_dsn()]
    if args.command == "worker" and args.listen_dsn and len(args.listen_dsn) != len(dsns):
        parser.error(f"worker: --listen-dsn is given once per --database: {len(dsns)} "
                     f"database(s), {len(args.listen_dsn)} --listen-dsn")
    try:
        if args.command == "worker":
            return cmd_worker(args, dsns)
        if len(dsns) > 1:
            parser.error(f"{args.command} takes one --database")
        return _COMMANDS[args.command](args, dsns[0])
    except PgclaimError as exc:
        state = f" [{exc.sqlstate}]" if exc.sqlstate else ""
        print(f"pgclaim: error{state}: {_dsn.scrub(str(exc), *dsns)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
