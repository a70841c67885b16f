"""Definer functions cannot be hijacked.

Every pgclaim function runs as pgclaim_owner. A login that could make one of them resolve
a type, table, operator or function of its own would run its code with pgclaim's rights.
Each test here plants, from a real login's connection:

- in its temporary schema, a domain named like every type the functions use (``jsonb``,
  ``text``, ``timestamptz``, ``interval``, ...) and a view named like every table and
  catalog they read (``records``, ``queues``, ``pg_roles``, ...), each running a marker
  function when used;
- in a schema of its own, first on its ``search_path``, operators for the types the
  functions compare and combine, and functions named like the catalog functions they call;

then calls every function the login may execute (read from pg_proc, so a new function is
attacked too) with valid arguments, and reads every view it may read: the marker must never
run. The same planted objects do run in the login's own queries, and inside a pgclaim
function whose ``search_path`` pin is removed (or set to ``''``), where they run as
pgclaim_owner: so the check is able to fail.
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from _catalog import Function, call, granted_functions, granted_views
from _seckit import ADMIN, PRODUCER, WORKER_A, SecDb, one
from psycopg.types.json import Jsonb

MARK = "pgclaim-attack"

#: types named in pgclaim's bodies (and more): each becomes a domain in pg_temp whose
#: check runs the marker. Keywords such as integer or bigint always mean pg_catalog's
#: type, but a domain of that name is planted anyway.
PLANTED_TYPES = {
    "jsonb": "pg_catalog.jsonb", "json": "pg_catalog.json", "text": "pg_catalog.text",
    "varchar": "pg_catalog.varchar", "name": "pg_catalog.name", "bpchar": "pg_catalog.text",
    "timestamptz": "pg_catalog.timestamptz", "timestamp": "pg_catalog.timestamp",
    "date": "pg_catalog.date", "interval": "pg_catalog.interval",
    "int2": "pg_catalog.int2", "int4": "pg_catalog.int4", "int8": "pg_catalog.int8",
    "integer": "pg_catalog.int4", "bigint": "pg_catalog.int8", "smallint": "pg_catalog.int2",
    "bool": "pg_catalog.bool", "boolean": "pg_catalog.bool", "oid": "pg_catalog.oid",
    "numeric": "pg_catalog.numeric", "float4": "pg_catalog.float4",
    "float8": "pg_catalog.float8", "uuid": "pg_catalog.uuid", "bytea": "pg_catalog.bytea",
    "bit": "pg_catalog.varbit", "varbit": "pg_catalog.varbit",
    "regclass": "pg_catalog.regclass", "regrole": "pg_catalog.regrole",
    "regnamespace": "pg_catalog.regnamespace", "regtype": "pg_catalog.regtype",
    "regproc": "pg_catalog.regproc", "regprocedure": "pg_catalog.regprocedure",
    "record": "pg_catalog.text", "anyenum": "pg_catalog.text",
    "anyelement": "pg_catalog.text", "status": "pg_catalog.text",
    "claimed": "pg_catalog.text",
}

#: tables, views and catalogs pgclaim reads: each becomes a view in pg_temp that runs the
#: marker when read (or updated).
PLANTED_RELATIONS = (
    "records", "finished", "queue_totals", "queues", "workers", "config", "queue_grants",
    "queue_stats",
    "worker_status", "stuck_records", "queue_permissions", "records_id_seq",
    "pg_roles", "pg_authid", "pg_stat_activity", "pg_namespace", "pg_class", "pg_proc",
    "pg_type", "pg_database", "pg_settings", "pg_auth_members", "pg_locks", "pg_index",
    "pg_depend", "picked", "changed", "clock", "completed", "ins", "done", "moved",
)

_CMP = ("=", "<>", "<", "<=", ">", ">=")
_PAIRS = (
    ("pg_catalog.text", "pg_catalog.text"), ("pg_catalog.timestamptz", "pg_catalog.timestamptz"),
    ("pg_catalog.int8", "pg_catalog.int8"), ("pg_catalog.int4", "pg_catalog.int4"),
    ("pg_catalog.int8", "pg_catalog.int4"), ("pg_catalog.int4", "pg_catalog.int8"),
    ("pg_catalog.interval", "pg_catalog.interval"), ("pg_catalog.bool", "pg_catalog.bool"),
    ("pg_catalog.oid", "pg_catalog.oid"), ("pg_catalog.jsonb", "pg_catalog.jsonb"),
    ("pg_catalog.numeric", "pg_catalog.numeric"),
)
_ENUM_PAIRS = (("pg_catalog.anyenum", "pg_catalog.text"),
               ("pg_catalog.text", "pg_catalog.anyenum"),
               ("pg_catalog.anyenum", "pg_catalog.anyenum"))
#: (operator, left, right, result, body expression)
PLANTED_OPERATORS: list[tuple[str, str, str, str, str]] = [
    *((op, left, right, "pg_catalog.bool", f"a operator(pg_catalog.{op}) b")
      for op in _CMP for left, right in _PAIRS),
    *((op, left, right, "pg_catalog.bool",
       f"a::pg_catalog.text operator(pg_catalog.{op}) b::pg_catalog.text")
      for op in _CMP for left, right in _ENUM_PAIRS),
    ("||", "pg_catalog.text", "pg_catalog.text", "pg_catalog.text",
     "a operator(pg_catalog.||) b"),
    ("||", "pg_catalog.anycompatiblearray", "pg_catalog.anycompatiblearray",
     "pg_catalog.anycompatiblearray", "a operator(pg_catalog.||) b"),
    ("||", "pg_catalog.anycompatiblearray", "pg_catalog.anycompatible",
     "pg_catalog.anycompatiblearray", "a operator(pg_catalog.||) b"),
    ("+", "pg_catalog.timestamptz", "pg_catalog.interval", "pg_catalog.timestamptz",
     "a operator(pg_catalog.+) b"),
    ("-", "pg_catalog.timestamptz", "pg_catalog.interval", "pg_catalog.timestamptz",
     "a operator(pg_catalog.-) b"),
    ("-", "pg_catalog.timestamptz", "pg_catalog.timestamptz", "pg_catalog.interval",
     "a operator(pg_catalog.-) b"),
    ("+", "pg_catalog.interval", "pg_catalog.interval", "pg_catalog.interval",
     "a operator(pg_catalog.+) b"),
    ("*", "pg_catalog.interval", "pg_catalog.float8", "pg_catalog.interval",
     "a operator(pg_catalog.*) b"),
    ("+", "pg_catalog.int4", "pg_catalog.int4", "pg_catalog.int4", "a operator(pg_catalog.+) b"),
    ("-", "pg_catalog.int4", "pg_catalog.int4", "pg_catalog.int4", "a operator(pg_catalog.-) b"),
    ("+", "pg_catalog.int8", "pg_catalog.int8", "pg_catalog.int8", "a operator(pg_catalog.+) b"),
    ("-", "pg_catalog.int8", "pg_catalog.int8", "pg_catalog.int8", "a operator(pg_catalog.-) b"),
    ("~", "pg_catalog.text", "pg_catalog.text", "pg_catalog.bool", "a operator(pg_catalog.~) b"),
    ("!~", "pg_catalog.text", "pg_catalog.text", "pg_catalog.bool",
     "a operator(pg_catalog.!~) b"),
]

#: functions named like the catalog functions pgclaim calls: (name, arguments, result,
#: body expression). pgclaim qualifies them; a body that did not would find these first.
PLANTED_FUNCTIONS: list[tuple[str, str, str, str]] = [
    ("clock_timestamp", "", "pg_catalog.timestamptz", "pg_catalog.clock_timestamp()"),
    ("now", "", "pg_catalog.timestamptz", "pg_catalog.now()"),
    ("random", "", "pg_catalog.float8", "pg_catalog.random()"),
    ("gen_random_uuid", "", "pg_catalog.uuid", "pg_catalog.gen_random_uuid()"),
    ("current_setting", "a pg_catalog.text", "pg_catalog.text", "pg_catalog.current_setting(a)"),
    ("current_setting", "a pg_catalog.text, b pg_catalog.bool", "pg_catalog.text",
     "pg_catalog.current_setting(a, b)"),
    ("pg_has_role", "a pg_catalog.oid, b pg_catalog.text, c pg_catalog.text", "pg_catalog.bool",
     "pg_catalog.pg_has_role(a, b, c)"),
    ("pg_has_role", "a pg_catalog.oid, b pg_catalog.oid, c pg_catalog.text", "pg_catalog.bool",
     "pg_catalog.pg_has_role(a, b, c)"),
    ("octet_length", "a pg_catalog.text", "pg_catalog.int4", "pg_catalog.octet_length(a)"),
    ("length", "a pg_catalog.text", "pg_catalog.int4", "pg_catalog.length(a)"),
    ("left", "a pg_catalog.text, b pg_catalog.int4", "pg_catalog.text", "pg_catalog.left(a, b)"),
    ("quote_literal", "a pg_catalog.text", "pg_catalog.text", "pg_catalog.quote_literal(a)"),
    ("quote_ident", "a pg_catalog.text", "pg_catalog.text", "pg_catalog.quote_ident(a)"),
    ("format", "a pg_catalog.text", "pg_catalog.text", "pg_catalog.format(a)"),
    ("isfinite", "a pg_catalog.timestamptz", "pg_catalog.bool", "pg_catalog.isfinite(a)"),
    ("cardinality", "a pg_catalog.anyarray", "pg_catalog.int4", "pg_catalog.cardinality(a)"),
    ("array_position", "a pg_catalog.anycompatiblearray, b pg_catalog.anycompatible",
     "pg_catalog.int4",
     "pg_catalog.array_position(a, b)"),
    ("pg_notify", "a pg_catalog.text, b pg_catalog.text", "pg_catalog.void",
     "pg_catalog.pg_notify(a, b)"),
    ("md5", "a pg_catalog.text", "pg_catalog.text", "pg_catalog.md5(a)"),
    ("power", "a pg_catalog.float8, b pg_catalog.float8", "pg_catalog.float8",
     "pg_catalog.power(a, b)"),
    ("replace", "a pg_catalog.text, b pg_catalog.text, c pg_catalog.text", "pg_catalog.text",
     "pg_catalog.replace(a, b, c)"),
    ("substr", "a pg_catalog.text, b pg_catalog.int4, c pg_catalog.int4", "pg_catalog.text",
     "pg_catalog.substr(a, b, c)"),
    ("to_jsonb", "a pg_catalog.anyelement", "pg_catalog.jsonb", "pg_catalog.to_jsonb(a)"),
    ("round", "a pg_catalog.numeric, b pg_catalog.int4", "pg_catalog.numeric",
     "pg_catalog.round(a, b)"),
    ("date_trunc", "a pg_catalog.text, b pg_catalog.interval", "pg_catalog.interval",
     "pg_catalog.date_trunc(a, b)"),
    ("make_interval",
     ("years pg_catalog.int4 default 0, months pg_catalog.int4 default 0, "
      "weeks pg_catalog.int4 default 0, days pg_catalog.int4 default 0, "
      "hours pg_catalog.int4 default 0, mins pg_catalog.int4 default 0, "
      "secs pg_catalog.float8 default 0"),
     "pg_catalog.interval",
     "pg_catalog.make_interval(years, months, weeks, days, hours, mins, secs)"),
    ("set_config", "a pg_catalog.text, b pg_catalog.text, c pg_catalog.bool", "pg_catalog.text",
     "pg_catalog.set_config(a, b, c)"),
]


def attack_schema(login: str) -> str:
    return f"{login}_atk"


def plant(conn: psycopg.Connection[Any], schema: str) -> None:
    """Plants every object above from the login's connection, and puts ``schema`` (the
    login's own) first on its search_path."""
    ddl = [
        f"""create function pg_temp.f(tag pg_catalog.text) returns pg_catalog.bool
        language plpgsql volatile as $f$
        begin
            raise warning '{MARK}: % ran as %', tag, current_user;
            perform pg_catalog.set_config('attack.ran', tag, false);
            perform pg_catalog.set_config('attack.as', current_user::pg_catalog.text, false);
            return true;
        end
        $f$""",
        f'grant usage on schema "{schema}" to public',
    ]
    for name, base in PLANTED_TYPES.items():
        ddl.append(f'create domain pg_temp."{name}" as {base} '
                   f"check (pg_temp.f('type {name}'))")
    for name in PLANTED_RELATIONS:
        ddl.append(f'create view pg_temp."{name}" as select 1::pg_catalog.int8 as id, '
                   "'x'::pg_catalog.text as queue, 'pending'::pg_catalog.text as status "
                   f"where pg_temp.f('relation {name}')")
    for i, (op, left, right, result, expr) in enumerate(PLANTED_OPERATORS):
        tag = f"operator {op}({left}, {right})"
        ddl.append(f'''create function "{schema}".op_{i}(a {left}, b {right}) returns {result}
        language plpgsql as $f$
        begin perform pg_temp.f('{tag}'); return {expr}; end
        $f$''')
        ddl.append(f'create operator "{schema}".{op} (leftarg = {left}, rightarg = {right}, '
                   f'function = "{schema}".op_{i})')
    for name, args, result, expr in PLANTED_FUNCTIONS:
        body = (f"perform pg_temp.f('function {name}({args})'); perform {expr}; return;"
                if result == "pg_catalog.void" else
                f"perform pg_temp.f('function {name}({args})'); return {expr};")
        ddl.append(f'''create function "{schema}"."{name}"({args}) returns {result}
        language plpgsql as $f$ begin {body} end $f$''')
    ddl.append(f'create function "{schema}".unnest(a pg_catalog.anyarray) '
               "returns setof pg_catalog.anyelement language plpgsql as $f$ begin "
               "perform pg_temp.f('function unnest(anyarray)'); "
               "return query select pg_catalog.unnest(a); end $f$")
    with conn.transaction():
        for stmt in ddl:
            conn.execute(stmt)
    conn.execute(f'set search_path = "{schema}", pg_catalog')


class Attacker:
    """A login's connection with the planted objects; every call it makes is checked."""

    def __init__(self, db: SecDb, login: str) -> None:
        self.db = db
        self.login = login
        db.su.execute(f'create schema "{attack_schema(login)}" authorization "{login}"')
        self.conn = db.login(login)
        self.notices: list[str] = []
        self.conn.add_notice_handler(lambda d: self.notices.append(d.message_primary or ""))
        plant(self.conn, attack_schema(login))
        self.functions: dict[str, Function] = {}
        for fn in granted_functions(db.su, login):
            assert fn.name not in self.functions, f"overloaded pgclaim.{fn.name}"
            self.functions[fn.name] = fn
        self.views = granted_views(db.su, login)
        self.called: dict[str, int] = {}
        self.worker = f"w-{login}"
        self.oid = int(one(db.su, "select %s::pg_catalog.regrole::pg_catalog.oid::int8",
                           (login,)))

    # -- the marker

    def fired(self) -> list[str]:
        """What the planted code reported since the last reset (notices survive an error;
        the setting survives a successful call)."""
        out = [n for n in self.notices if n.startswith(MARK)]
        ran = one(self.conn, "select pg_catalog.current_setting('attack.ran', true)")
        if ran:
            who = one(self.conn, "select pg_catalog.current_setting('attack.as', true)")
            out.append(f"marker set by {ran} as {who}")
        return out

    def reset(self) -> None:
        self.conn.execute("select pg_catalog.set_config('attack.ran', '', false), "
                          "pg_catalog.set_config('attack.as', '', false)")
        self.notices.clear()

    def assert_clean(self, what: str) -> None:
        fired = self.fired()
        assert not fired, f"{what}: planted code ran: {fired}"

    # -- calls

    def may(self, name: str) -> bool:
        return name in self.functions

    def call(self, name: str, /, **args: Any) -> list[Any]:
        """Calls pgclaim.<name> as the login; the planted code must not have run."""
        try:
            rows = call(self.conn, self.functions[name], args)
        finally:
            self.assert_clean(f"pgclaim.{name}({args})")
        self.called[name] = self.called.get(name, 0) + 1
        return rows

    def value(self, name: str, /, **args: Any) -> Any:
        rows = self.call(name, **args)
        assert len(rows) == 1
        return rows[0][0]

    def claim(self, n: int, queue: str = "hj", worker: str | None = None
              ) -> tuple[list[int], list[int]]:
        """Enqueues n records (as the superuser) and claims them through the planted connection."""
        self.db.enqueue(queue, n)
        rows = self.call("claim_batch", queue=queue, worker_id=worker or self.worker,
                         batch_size=n, lease="1 minute")
        assert len(rows) == n
        return [r[0] for r in rows], [r[-1] for r in rows]


def now() -> datetime:
    return datetime.now(UTC)


# --------------------------------------------------------------------------- valid calls
# One step per function: valid arguments, and whatever state the call needs.

def _enqueue(a: Attacker) -> None:
    rid = a.value("enqueue", queue="hj", payload=Jsonb({"k": [1, "x"]}), priority=1,
                  run_at=now(), dedup_key="dk-1", max_attempts=2)
    assert a.value("enqueue", queue="hj", payload=Jsonb({}), dedup_key="dk-1") == rid
    a.value("enqueue", queue="hj", payload=Jsonb("s"))


def _enqueue_batch(a: Attacker) -> None:
    rows = a.call("enqueue_batch", queue="hj", payloads=[Jsonb({}), Jsonb({"x": [1]})],
                  priority=0, run_at=None)
    assert len(rows) == 2


def _register(a: Attacker) -> None:
    a.call("register_worker", worker_id=a.worker, info=Jsonb({"host": "h", "pid": 1}))
    a.call("register_worker", worker_id=a.worker)


def _claim(a: Attacker) -> None:
    a.claim(2)


def _heartbeat(a: Attacker) -> None:
    ids, _ = a.claim(1)
    assert a.value("heartbeat", worker_id=a.worker) >= 1
    assert a.value("heartbeat", worker_id=a.worker, ids=ids) == 1


def _extend(a: Attacker) -> None:
    ids, tokens = a.claim(2)
    assert a.value("extend_lease", worker_id=a.worker, ids=ids, lease="2 minutes",
                   lease_tokens=tokens) == 2
    assert a.value("extend_lease", worker_id=a.worker, ids=ids) == 2


def _complete(a: Attacker) -> None:
    ids, tokens = a.claim(2)
    assert a.value("complete", worker_id=a.worker, ids=ids, lease_tokens=tokens) == 2
    ids, _ = a.claim(1)
    assert a.value("complete", worker_id=a.worker, ids=ids) == 1


def _fail(a: Attacker) -> None:
    ids, tokens = a.claim(2)
    assert a.value("fail", worker_id=a.worker, id=ids[0], error="boom", retry_after="1 second",
                   lease_token=tokens[0], fatal=False) == "pending"
    assert a.value("fail", worker_id=a.worker, id=ids[1], error="x" * 10000,
                   fatal=True) == "failed"


def _fail_batch(a: Attacker) -> None:
    ids, tokens = a.claim(2)
    rows = a.call("fail_batch", worker_id=a.worker, ids=ids, errors=["e1", "e2" * 9000],
                  lease_tokens=tokens, retry_after=["1 second", None], fatal=[False, True])
    assert sorted(r[1] for r in rows) == ["failed", "pending"]
    ids, _ = a.claim(1)
    assert len(a.call("fail_batch", worker_id=a.worker, ids=ids, errors=["e"])) == 1


def _release(a: Attacker) -> None:
    ids, tokens = a.claim(2)
    assert a.value("release", worker_id=a.worker, ids=ids, lease_tokens=tokens) == 2


def _reclaim(a: Attacker) -> None:
    ids, _ = a.claim(1)
    a.db.su.execute("update pgclaim.records set lease_until = pg_catalog.now() - '1 hour'"
                    "::interval where id = %s", (ids[0],))
    assert a.value("reclaim_orphans", max_records=100) >= 1


def _deregister(a: Attacker) -> None:
    other = a.worker + "-2"
    a.call("register_worker", worker_id=other, info=Jsonb({}))
    a.claim(1, worker=other)
    assert a.value("deregister_worker", worker_id=other) == 1


def _create_queue(a: Attacker) -> None:
    a.call("create_queue", queue="hj.new", lease="1 minute", max_attempts=3,
           backoff_base="1 second", backoff_max="1 minute", retention="1 day",
           max_payload_bytes=4096, max_lease="1 hour", min_priority=-10, max_priority=10,
           max_batch=50)
    a.call("create_queue", queue="hj.new2")


def _alter_queue(a: Attacker) -> None:
    a.db.su.execute("select pgclaim.create_queue('hj.alter')")
    a.call("alter_queue", queue="hj.alter", lease="2 minutes", max_attempts=4,
           backoff_base="2 seconds", backoff_max="2 minutes", retention="2 days",
           max_payload_bytes=8192, max_lease="2 hours", min_priority=-20, max_priority=20,
           max_batch=60)
    a.call("alter_queue", queue="hj.alter", max_batch=70)


def _pause_resume(a: Attacker) -> None:
    a.db.su.execute("select pgclaim.create_queue('hj.pause')")
    if a.may("pause_queue"):
        a.call("pause_queue", queue="hj.pause")
    if a.may("resume_queue"):
        a.call("resume_queue", queue="hj.pause")


def _grant_revoke(a: Attacker) -> None:
    a.db.su.execute("select pgclaim.create_queue('hj.grant')")
    privileges = ["enqueue", "claim", "read"]
    if a.may("grant_queue"):
        assert a.value("grant_queue", queue="hj.grant", role=a.login,
                       privileges=privileges) == sorted(privileges)
    if a.may("revoke_queue"):
        assert a.value("revoke_queue", queue="hj.grant", role=a.login,
                       privileges=privileges) == []


def _drop_queue(a: Attacker) -> None:
    a.db.su.execute("select pgclaim.create_queue('hj.drop')")
    a.db.enqueue("hj.drop", 2)
    assert a.value("drop_queue", queue="hj.drop", force=True) == 2
    a.db.su.execute("select pgclaim.create_queue('hj.drop')")
    assert a.value("drop_queue", queue="hj.drop") == 0


def _retry_failed(a: Attacker) -> None:
    ids, tokens = a.claim(1)
    a.call("fail", worker_id=a.worker, id=ids[0], error="dead", lease_token=tokens[0],
           fatal=True)
    assert a.value("retry_failed", queue="hj", ids=ids) == 1
    a.value("retry_failed", queue="hj")


def _cancel(a: Attacker) -> None:
    ids = a.db.enqueue("hj", 2)
    assert a.value("cancel", ids=ids) == 2


def _purge(a: Attacker) -> None:
    ids, tokens = a.claim(1)
    a.call("complete", worker_id=a.worker, ids=ids, lease_tokens=tokens)
    a.db.su.execute("update pgclaim.finished set finished_at = pg_catalog.now() - '1 day'"
                    "::interval where id = %s", (ids[0],))
    assert a.value("purge", queue="hj", older_than="1 hour", max_records=100) >= 1
    a.value("purge", queue="hj")


def _configure(a: Attacker) -> None:
    a.call("configure", worker_timeout="1 minute", sweep_limit=10, max_ids=10000,
           max_error_bytes=8192, max_info_bytes=8192)


def _internals(a: Attacker) -> None:
    for name, args in (("_now", {}), ("_caller", {}), ("_admin", {"role": a.oid}),
                       ("_allowed", {"queue": "hj", "restricted": True, "privilege": "read",
                                     "role": a.oid}),
                       ("_queue_counts", {"with_completed": True})):
        if a.may(name):
            a.call(name, **args)


def _read(a: Attacker) -> None:
    a.value("schema_version")
    a.value("health")
    a.value("health", max_xact_age="1 hour", max_pending_age="2 hours")


#: function -> the step that calls it validly (several functions may share a step)
STEPS: dict[str, Callable[[Attacker], None]] = {
    "schema_version": _read, "health": _read,
    "enqueue": _enqueue, "enqueue_batch": _enqueue_batch,
    "register_worker": _register, "claim_batch": _claim, "heartbeat": _heartbeat,
    "extend_lease": _extend, "complete": _complete, "fail": _fail, "fail_batch": _fail_batch,
    "release": _release, "reclaim_orphans": _reclaim, "deregister_worker": _deregister,
    "create_queue": _create_queue, "alter_queue": _alter_queue,
    "pause_queue": _pause_resume, "resume_queue": _pause_resume,
    "grant_queue": _grant_revoke, "revoke_queue": _grant_revoke, "drop_queue": _drop_queue,
    "retry_failed": _retry_failed, "cancel": _cancel, "purge": _purge,
    "configure": _configure,
    "_now": _internals, "_caller": _internals, "_admin": _internals, "_allowed": _internals,
    "_queue_counts": _internals,
}

#: what a function added later is called with when it has no step yet, by parameter name
#: and then by type; such a call may also be refused with one of pgclaim's errors.
_BY_NAME: dict[str, Callable[[Attacker], Any]] = {
    "queue": lambda a: "hj", "worker_id": lambda a: a.worker,
    "ids": lambda a: a.claim(1)[0], "id": lambda a: a.claim(1)[0][0],
    "payload": lambda a: Jsonb({}), "payloads": lambda a: [Jsonb({})],
    "info": lambda a: Jsonb({}), "role": lambda a: a.login, "privileges": lambda a: ["read"],
}
_BY_TYPE: dict[str, Any] = {
    "pg_catalog.text": "x", "pg_catalog.int4": 1, "pg_catalog.int8": 1,
    "pg_catalog.bool": False, "pg_catalog.interval": "1 minute", "pg_catalog.jsonb": Jsonb({}),
    "pg_catalog.timestamptz": None, "pg_catalog.oid": None,
    "pg_catalog._text": ["x"], "pg_catalog._int8": [1], "pg_catalog._bool": [False],
    "pg_catalog._interval": ["1 minute"], "pg_catalog._jsonb": [Jsonb({})],
}
PGCLAIM_REFUSALS = {"PC001", "PC002", "PC003", "PC004", "PC005", "22004", "22023", "42501",
                    "42704"}


def _generic(a: Attacker, fn: Function) -> None:
    args = {}
    for p in fn.params:
        if p.name in _BY_NAME and p.name != "ids" or p.name == "ids" and a.may("claim_batch"):
            args[p.name] = _BY_NAME[p.name](a)
        elif not p.has_default:
            args[p.name] = _BY_TYPE.get(p.type)
    try:
        a.call(fn.name, **args)
    except psycopg.Error as exc:
        assert exc.sqlstate in PGCLAIM_REFUSALS, f"pgclaim.{fn.name}({args}): {exc}"
        a.called[fn.name] = a.called.get(fn.name, 0) + 1


def setup_database(db: SecDb) -> None:
    db.su.execute("select pgclaim.create_queue('hj')")
    db.enqueue("hj", 3)


def run_every_call(a: Attacker) -> None:
    """Calls every function the login may execute, then reads every view it may read."""
    done: set[Callable[[Attacker], None]] = set()
    for name, fn in a.functions.items():
        step = STEPS.get(name)
        if step is None:
            _generic(a, fn)
        elif step not in done:
            done.add(step)
            step(a)
    # a stuck record (its lease backdated) and a registered worker, so the views have rows
    if a.may("claim_batch"):
        ids, _ = a.claim(1)
        a.db.su.execute("update pgclaim.records set lease_until = pg_catalog.now() - "
                        "'1 hour'::interval where id = %s", (ids[0],))
        a.call("register_worker", worker_id=a.worker)
    for view in a.views:
        a.conn.execute(f'select * from pgclaim."{view}"').fetchall()
        a.assert_clean(f"select * from pgclaim.{view}")
    missing = set(a.functions) - set(a.called)
    assert not missing, f"granted but never called: {sorted(missing)}"


# --------------------------------------------------------------------------- the tests

ROLES = {PRODUCER: "pgclaim_producer", WORKER_A: "pgclaim_worker", ADMIN: "pgclaim_admin"}


@pytest.mark.parametrize("login", list(ROLES))
def test_planted_objects_never_run_inside_pgclaim(db: SecDb, login: str) -> None:
    setup_database(db)
    a = Attacker(db, login)
    # the login may call what its role was granted, no less
    expected = {r[0] for r in db.rows(
        "select p.proname::text from pg_catalog.pg_proc as p "
        "where p.pronamespace = 'pgclaim'::regnamespace "
        "and pg_catalog.has_function_privilege(%s, p.oid, 'EXECUTE') "
        # a trigger function cannot be called (fence_trigger: tests/python/test_fencing.py)
        "and p.prorettype <> 'pg_catalog.trigger'::pg_catalog.regtype", (ROLES[login],))}
    assert set(a.functions) == expected and expected
    a.reset()
    run_every_call(a)
    assert sum(a.called.values()) >= len(a.functions)
    # and the connection still has its planted objects (nothing dropped them on the way)
    assert one(a.conn, "select pg_catalog.count(*)::int8 from pg_catalog.pg_type as t "
               "where t.typnamespace = pg_catalog.pg_my_temp_schema()") >= len(PLANTED_TYPES)


@pytest.mark.parametrize("login", list(ROLES))
def test_planted_objects_run_in_the_logins_own_queries(db: SecDb, login: str) -> None:
    """The planted domain, view, operator and function do run where they are resolved:
    in the login's own statements (as the login)."""
    setup_database(db)
    a = Attacker(db, login)
    for sql, tag in (
        ("select '{}'::jsonb", "type jsonb"),
        ("select 'x'::text", "type text"),
        ("select pg_catalog.now()::timestamptz", "type timestamptz"),
        ("select * from records", "relation records"),
        ("select 'a'::pg_catalog.text = 'b'::pg_catalog.text",
         "operator =(pg_catalog.text, pg_catalog.text)"),
        ("select pg_catalog.clock_timestamp() <= pg_catalog.clock_timestamp()",
         "operator <=(pg_catalog.timestamptz, pg_catalog.timestamptz)"),
        ("select clock_timestamp()", "function clock_timestamp()"),
        ("select 'running'::pgclaim.status = 'running'", "operator ="),
    ):
        a.reset()
        a.conn.execute(sql).fetchall()
        fired = a.fired()
        assert any(tag in f for f in fired), (sql, fired)
        assert any(f"ran as {login}" in f for f in fired), fired


MUTANTS = {
    "claim_batch": "pgclaim.claim_batch(text, text, integer, interval)",
    "enqueue_batch": "pgclaim.enqueue_batch(text, jsonb[], integer, timestamptz)",
}


@pytest.mark.parametrize("pin", ["reset search_path", "set search_path = ''"])
@pytest.mark.parametrize("login", list(ROLES))
def test_without_the_pin_the_planted_code_runs_as_the_owner(db: SecDb, login: str,
                                                             pin: str) -> None:
    """The same function with its search_path pin removed (or set to '', which still
    searches pg_temp first for types) runs the login's planted code as pgclaim_owner:
    the check above would catch a function that lost its pin."""
    setup_database(db)
    a = Attacker(db, login)
    name = "claim_batch" if a.may("claim_batch") else "enqueue_batch"
    db.su.execute(f"alter function {MUTANTS[name]} {pin}")
    a.reset()
    with pytest.raises(AssertionError, match="planted code ran"):
        if name == "claim_batch":
            a.claim(1)
        else:
            a.call("enqueue_batch", queue="hj", payloads=[Jsonb({})])
    fired = a.fired()
    assert any("ran as pgclaim_owner" in f for f in fired), fired
    assert any("type timestamptz" in f for f in fired), fired
    if pin == "reset search_path":
        # with the login's own path, its operators are found before pg_catalog's
        assert any("operator" in f and "ran as pgclaim_owner" in f for f in fired), fired
