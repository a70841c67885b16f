"""Fuzz every function a login may call, as that login.

The functions and their argument types come from pg_proc (what the login may execute), so a
function a release adds is fuzzed too. Each argument is drawn from a mix of valid values
(the database's queues, worker ids, held record ids and their lease tokens, once or twice
each, sensible durations) and hostile ones (nulls, huge strings, extreme numbers, infinite
timestamps, mixed-sign and huge intervals, arrays with nulls, huge, multidimensional or
with other bounds, unicode and control characters).

Every call must either succeed with pgclaim's invariants intact, or fail with a documented
SQLSTATE and change nothing; queue_stats and health() must work after every call. A test
example is a short series of calls (and moves of pgclaim's clock) in one transaction of
the login's, each call under a savepoint, rolled back at the end of the example: every
example starts from the same database, so the run is deterministic (derandomize, no
example database) and a failure shrinks to a minimal series of calls.

Checked after every successful call (the functions of schema fuzzkit read the tables as
their owner, a superuser, in the login's transaction):

- a running record has a worker id, a lease, a lease token and a holder role, and a record
  that is not running has no lease; attempts stay within 0..max_attempts;
- no record changes holder (lease token) while its lease runs: never two holders;
- a record another role holds is left alone by a worker's call, except to be taken back
  once its lease expired or its worker went silent (claim_batch, reclaim_orphans);
- claim_batch hands out at most batch_size records, of the queue asked for, none of a
  paused queue, to the caller's role;
- queue_stats counts equal the table's counts per status, for the queues the login reads;
- every queue's settings are valid, restricted queues are those with grants, every worker
  id has an owner, every record's queue exists.
"""
from __future__ import annotations

import copy
import json
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
import pytest
from _catalog import Function, granted_functions
from _seckit import (
    ADMIN,
    ALL_RECORDS,
    DIGEST_SQL,
    FUZZ_STATS,
    PRODUCER,
    WORKER_A,
    WORKER_B,
    SecDb,
    claim,
    mutant,
    one,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pgdb import freeze_clock
from psycopg.types.json import Jsonb

T0 = datetime.fromisoformat("2030-01-01T00:00:00+00:00")
MiB = 1024 * 1024

#: the SQLSTATEs a refused call may raise (docs/sql.md's Errors table, and 42883/42725
#: for a call that does not resolve)
DOCUMENTED = {"PC001", "PC002", "PC003", "PC004", "PC005", "22004", "22023", "42501",
              "42704", "42710", "55P03", "42883", "42725"}

# --------------------------------------------------------------------------- fuzzkit

FUZZKIT = """
create schema fuzzkit;

create function fuzzkit.digest() returns text
language sql stable security definer set search_path = pg_catalog, pg_temp as $fn$
""" + DIGEST_SQL + r"""
$fn$;

-- Running records: id -> [worker_id, lease_token, lease_until, holder, status,
-- lease expired, worker silent (as _reclaim judges them)]
create function fuzzkit.running() returns jsonb
language sql stable security definer set search_path = pg_catalog, pg_temp as $fn$
    select coalesce(pg_catalog.jsonb_object_agg(r.id::text, pg_catalog.jsonb_build_array(
        r.worker_id, r.lease_token::text, r.lease_until, r.holder_role::regrole::text,
        r.status::text, r.lease_until < pgclaim._now(), exists (
            select from pgclaim.workers as w cross join pgclaim.config as c
            where w.worker_id = r.worker_id
              and w.last_seen < pgclaim._now() - c.worker_timeout
              and (w.owner_role = r.holder_role or w.owner_role is null
                   or r.holder_role is null)))), '{}'::jsonb)
    from pgclaim.records as r where r.status = 'running';
$fn$;

-- The state of the given records (unfinished or finished), as running() describes them
-- (without the last two).
create function fuzzkit.state(ids bigint[]) returns jsonb
language sql stable security definer set search_path = pg_catalog, pg_temp as $fn$
    select coalesce(pg_catalog.jsonb_object_agg(r.id::text, pg_catalog.jsonb_build_array(
        r.worker_id, r.lease_token::text, r.lease_until, r.holder_role::regrole::text,
        r.status::text)), '{}'::jsonb)
    from (select * from pgclaim.records union all select * from pgclaim.finished) as r
    where r.id = any(ids);
$fn$;

create function fuzzkit.violations() returns text[]
language plpgsql stable security definer set search_path = pg_catalog, pg_temp as $fn$
declare
    v text[] := '{}';
    v_now timestamptz := pgclaim._now();
begin
    v := v || array(select pg_catalog.format('record %s running without %s', r.id,
        concat_ws(' ', case when r.worker_id is null then 'worker_id' end,
                       case when r.lease_until is null then 'lease_until' end,
                       case when r.lease_token is null then 'lease_token' end,
                       case when r.lease_for is null then 'lease_for' end,
                       case when r.holder_role is null then 'holder_role' end))
        from pgclaim.records as r where r.status = 'running'
          and (r.worker_id is null or r.lease_until is null or r.lease_token is null
               or r.lease_for is null or r.holder_role is null));
    v := v || array(select pg_catalog.format('record %s is %s with a lease', r.id, r.status)
        from pgclaim.records as r where r.status <> 'running' and r.lease_until is not null);
    v := v || array(select pg_catalog.format('finished record %s is %s with a lease', f.id,
            f.status)
        from pgclaim.finished as f
        where f.status not in ('completed', 'failed', 'cancelled') or f.lease_until is not null
           or f.finished_at is null);
    v := v || array(select pg_catalog.format('record %s is both unfinished and finished', r.id)
        from pgclaim.records as r
        where exists (select from pgclaim.finished as f where f.id = r.id));
    v := v || array(select pg_catalog.format('record %s is %s at attempt %s of %s', r.id,
            r.status, r.attempt, r.max_attempts)
        from pgclaim.records as r
        where (r.status = 'running' and (r.attempt < 1 or r.attempt > r.max_attempts))
           or (r.status = 'pending' and (r.attempt < 0 or r.attempt >= r.max_attempts)));
    v := v || array(select pg_catalog.format('record %s of missing queue %s', r.id, r.queue)
        from (select r.id, r.queue from pgclaim.records as r
              union all select f.id, f.queue from pgclaim.finished as f) as r
        where not exists (select from pgclaim.queues as q where q.queue = r.queue));
    v := v || array(select pg_catalog.format('queue %s has invalid settings', q.queue)
        from pgclaim.queues as q
        where not (q.lease <= q.max_lease and q.min_priority <= q.max_priority
                   and q.max_batch between 1 and 10000 and q.max_attempts between 1 and 1000
                   and q.max_payload_bytes between 16 and 104857600)
           or q.restricted <> exists (
               select from pgclaim.queue_grants as g where g.queue = q.queue));
    v := v || array(select pg_catalog.format('worker %s has no owner', w.worker_id)
        from pgclaim.workers as w where w.owner_role is null);
    -- queue_stats as the login reads it (its identity: the connection's login) vs the table
    v := v || array(select pg_catalog.format('queue_stats of %s: %s, table: %s', s.queue,
            row(s.pending, s.scheduled, s.running, s.completed, s.failed,
                           s.cancelled),
            row(t.pending, t.scheduled, t.running, t.completed, t.failed,
                           t.cancelled))
        from pgclaim.queue_stats as s
        left join lateral (
            select
                pg_catalog.count(*) filter (where r.status = 'pending' and r.run_at <= v_now)
                    as pending,
                pg_catalog.count(*) filter (where r.status = 'pending' and r.run_at > v_now)
                    as scheduled,
                pg_catalog.count(*) filter (where r.status = 'running') as running,
                pg_catalog.count(*) filter (where r.status = 'completed') as completed,
                pg_catalog.count(*) filter (where r.status = 'failed') as failed,
                pg_catalog.count(*) filter (where r.status = 'cancelled') as cancelled
            from (select r.queue, r.status, r.run_at from pgclaim.records as r
                  union all select f.queue, f.status, f.run_at from pgclaim.finished as f) as r
            where r.queue = s.queue
        ) as t on true
        where (s.pending, s.scheduled, s.running, s.completed, s.failed, s.cancelled)
              is distinct from
              (t.pending, t.scheduled, t.running, t.completed, t.failed, t.cancelled));
    return v;
end;
$fn$;

-- Everything checked after a successful call, in one round trip.
create function fuzzkit.after(ids bigint[]) returns jsonb
language sql stable security definer set search_path = pg_catalog, pg_temp as $fn$
    select pg_catalog.jsonb_build_object('violations', pg_catalog.to_jsonb(fuzzkit.violations()),
        'state', fuzzkit.state(ids), 'running', fuzzkit.running());
$fn$;

-- Moves pgclaim's (frozen) clock by step, inside the caller's transaction.
create function fuzzkit.advance(step interval) returns timestamptz
language plpgsql volatile security definer set search_path = pg_catalog, pg_temp as $fn$
declare
    v_to timestamptz := pgclaim._now() + step;
begin
    execute pg_catalog.format(
        'create or replace function pgclaim._now() returns timestamptz language sql '
        'volatile set search_path = pg_catalog, pg_temp as %L',
        pg_catalog.format('select %L::timestamptz', v_to));
    return v_to;
end;
$fn$;

grant usage on schema fuzzkit to public;
"""

# --------------------------------------------------------------------------- the database


@dataclass
class World:
    """The committed starting point of every example, and the values drawn from it."""

    login: str
    functions: list[Function]
    queues: list[str]
    workers: list[str]
    ids: list[int]
    tokens: list[int]
    held: list[tuple[list[int], list[int]]]
    roles: list[str]
    role_oids: list[str]
    paused: set[str]
    oid: int
    is_admin: bool
    reads_stats: bool


def build_world(db: SecDb, login: str) -> World:
    su = db.su
    freeze_clock(su, T0)
    su.execute(FUZZKIT)
    su.execute("select pgclaim.create_queue('fz')")
    su.execute("select pgclaim.create_queue('fz.tight', lease => '1 minute', max_attempts => 3,"
               " max_payload_bytes => 256, max_lease => '1 hour', min_priority => -5,"
               " max_priority => 5, max_batch => 5)")
    su.execute("select pgclaim.create_queue('fz.locked')")
    su.execute("select pgclaim.grant_queue('fz.locked', %s, array['enqueue', 'claim', 'read'])",
               (WORKER_B,))
    su.execute("select pgclaim.create_queue('fz.paused')")
    for queue, n in (("fz", 30), ("fz.tight", 5), ("fz.tight", 3), ("fz.locked", 6),
                     ("fz.paused", 3)):
        su.execute("select pgclaim.enqueue_batch(%s, array_fill('{\"a\": 1}'::jsonb, array[%s]))",
                   (queue, n))
    su.execute("select pgclaim.pause_queue('fz.paused')")
    for key in ("d1", "d2"):
        db.enqueue("fz", 1, dedup_key=key, priority=7)
    db.enqueue("fz", 2, run_at=T0.replace(year=2031))
    held: list[tuple[list[int], list[int]]] = []
    if login != PRODUCER:
        me = db.login(login)
        me.execute("select pgclaim.register_worker('w-own')")
        held.append(claim(me, "fz", "w-own", 3))
        held.append(claim(me, "fz.tight", "w-own", 2))
    other = db.login(WORKER_B)
    other.execute("select pgclaim.register_worker('w-other')")
    held.append(claim(other, "fz", "w-other", 3))
    held.append(claim(other, "fz.locked", "w-other", 2))
    ids, tokens = claim(other, "fz", "w-other", 2)
    other.execute("select * from pgclaim.fail_batch('w-other', %s, %s, %s, null, %s)",
                  (ids, ["boom", "bang"], tokens, [True, True]))
    ids, tokens = claim(other, "fz", "w-other", 2)
    other.execute("select pgclaim.complete('w-other', %s, %s)", (ids, tokens))
    roles = [PRODUCER, WORKER_A, WORKER_B, ADMIN, "pgclaim_owner", "pgclaim_admin",
             "pgclaim_worker", "postgres", "pgclaim_t_group", "no_such_role"]
    oids = [str(r[0]) for r in su.execute(
        "select oid::int8 from pg_catalog.pg_roles where rolname = any(%s)", (roles,))]
    functions = granted_functions(su, login)
    reads = bool(one(su, "select pg_catalog.has_table_privilege(%s, 'pgclaim.queue_stats', "
                     "'SELECT')", (login,)))
    for fn in ("digest()", "running()", "after(bigint[])", "advance(interval)"):
        su.execute(f"grant execute on function fuzzkit.{fn} to {login}")
    return World(
        login=login, functions=functions,
        queues=["fz", "fz.tight", "fz.locked", "fz.paused", "fz.none"],
        workers=["w-own", "w-other", "w-new", "ghost"],
        ids=[r[0] for r in su.execute(f"select id from {ALL_RECORDS} as r order by id")]
        + [10**9],
        tokens=[t for _, toks in held for t in toks],
        held=held, roles=roles, role_oids=oids + ["0", "4294967295"],
        paused={"fz.paused"},
        oid=int(one(su, "select %s::regrole::oid::int8", (login,))),
        is_admin=login == ADMIN, reads_stats=reads,
    )


# --------------------------------------------------------------------------- strategies

OMIT = object()
CHARS = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")
SMALL_TEXT = st.text(CHARS, max_size=24)
HOSTILE_TEXT = st.one_of(
    st.sampled_from([
        "", " ", "\x01", "\t", "\n", "\x7f", "'; drop table pgclaim.records; --", "%s %I %L",
        "\\", '"', "é", "\U0001F4A5", "a" * 48, "a" * 49, "a" * 200, "a" * 201,
        "\U0001F4A5" * 50, "\U0001F4A5" * 128, "\U0001F4A5" * 129, "pgclaim_owner",
        "fz" + "\u200b", "FZ", "fz ",
    ]),
    SMALL_TEXT,
    st.sampled_from([10_000, 100_000, MiB + 1]).map(lambda n: "x" * n),
)
INT4 = st.one_of(
    st.sampled_from([0, -1, 1, 2**31 - 1, -(2**31), 1001, 10001, 1_000_001, 1_048_577,
                     104_857_601]),
    st.integers(-(2**31), 2**31 - 1),
)
INT8 = st.one_of(st.sampled_from([0, -1, 2**63 - 1, -(2**63), 10**12]),
                 st.integers(-(2**63), 2**63 - 1))
GOOD_INTERVALS = ["1 second", "30 seconds", "1 minute", "5 minutes", "1 hour", "12 hours",
                  "1 day", "30 days"]
HOSTILE_INTERVALS = st.sampled_from([
    "0", "-1 second", "-1 day", "1 mon -30 days 1 second", "-1 mon 31 days",
    "1 day -1 second", "-1 day 25 hours", "100 years", "100 years 1 second", "101 years",
    "10000 years", "177000000 years", "-177000000 years", "2562047788 hours",
    "-2562047788 hours", "00:00:00.000001", "31 days", "12 hours 1 second", "1 mon",
])
TIMESTAMPS = st.sampled_from([
    "infinity", "-infinity", "4713-11-24 00:00:00+00 BC", "294276-12-31 23:59:59+00",
    "1970-01-01 00:00:00+00", "2030-01-01 00:00:00+00", "2029-12-31 23:59:59+00",
    "2030-01-01 00:00:01+00", "2130-01-01 00:00:00+00",
])
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False) | SMALL_TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(SMALL_TEXT, inner, max_size=4),
    max_leaves=10,
)


def _deep(n: int) -> Any:
    value: Any = "bottom"
    for _ in range(n):
        value = [value]
    return value


HOSTILE_JSON = st.one_of(
    JSON,
    st.sampled_from([{"x": "y" * (2 * MiB)}, "z" * 300, _deep(200),
                     {"k" * 100: "\U0001F4A5" * 100}]),
)


def jsonb(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return strategy.map(Jsonb)


def arrays(element: st.SearchStrategy[Any], huge: Any = None,
           literal: str | None = None) -> st.SearchStrategy[Any]:
    """Arrays of ``element``: small, with nulls, empty, two-dimensional, and (when given)
    a huge one and a literal with other bounds."""
    options = [
        st.lists(element, max_size=5),
        st.lists(st.one_of(element, st.none()), min_size=1, max_size=5),
        st.lists(st.lists(element, min_size=2, max_size=2), min_size=2, max_size=2),
    ]
    if huge is not None:
        options.append(st.just(huge))
    if literal is not None:
        options.append(st.just(literal))
    return st.one_of(*options)


BY_TYPE: dict[str, tuple[Callable[[World], st.SearchStrategy[Any]], st.SearchStrategy[Any]]] = {
    # type: (valid values, hostile values)
    "pg_catalog.text": (lambda w: SMALL_TEXT, HOSTILE_TEXT),
    "pg_catalog.int4": (lambda w: st.integers(-3, 12), INT4),
    "pg_catalog.int8": (lambda w: st.sampled_from(w.ids), INT8),
    "pg_catalog.bool": (lambda w: st.booleans(), st.booleans()),
    "pg_catalog.interval": (lambda w: st.sampled_from(GOOD_INTERVALS), HOSTILE_INTERVALS),
    "pg_catalog.timestamptz": (lambda w: TIMESTAMPS, TIMESTAMPS),
    "pg_catalog.jsonb": (lambda w: jsonb(JSON), jsonb(HOSTILE_JSON)),
    "pg_catalog.oid": (lambda w: st.sampled_from(w.role_oids),
                       st.sampled_from(["0", "1", "10", "4294967295"])),
    "pg_catalog._text": (lambda w: st.lists(SMALL_TEXT, max_size=4),
                         arrays(HOSTILE_TEXT, literal="[0:0]={x}")),
    "pg_catalog._int8": (lambda w: st.lists(st.sampled_from(w.ids), max_size=6),
                         arrays(INT8, huge=list(range(1, 10_002)), literal="[0:1]={1,2}")),
    "pg_catalog._bool": (lambda w: st.lists(st.booleans(), max_size=4),
                         arrays(st.booleans())),
    "pg_catalog._interval": (lambda w: st.lists(st.sampled_from(GOOD_INTERVALS), max_size=4),
                             arrays(HOSTILE_INTERVALS)),
    "pg_catalog._jsonb": (lambda w: st.lists(jsonb(JSON), max_size=4),
                          arrays(jsonb(HOSTILE_JSON), huge=[Jsonb({})] * 10_001)),
}

BY_NAME: dict[str, Callable[[World], st.SearchStrategy[Any]]] = {
    "queue": lambda w: st.sampled_from(w.queues),
    "worker_id": lambda w: st.sampled_from(w.workers),
    "ids": lambda w: st.lists(st.sampled_from(w.ids), max_size=6),
    "id": lambda w: st.sampled_from(w.ids),
    "lease_token": lambda w: st.sampled_from(w.tokens or [1]),
    "lease_tokens": lambda w: st.lists(st.sampled_from(w.tokens or [1]), max_size=6),
    "priority": lambda w: st.sampled_from([-6, -5, 0, 1, 5, 6, 7, 1000, -1000]),
    "dedup_key": lambda w: st.sampled_from(["d1", "d2", "d3"]),
    "max_attempts": lambda w: st.sampled_from([1, 2, 3, 5, 6, 1000, 1001]),
    "batch_size": lambda w: st.sampled_from([1, 2, 5, 6, 100, 10000, 10001]),
    "max_records": lambda w: st.sampled_from([1, 3, 100, 1_000_000, 1_000_001]),
    "role": lambda w: st.sampled_from(w.roles),
    "privileges": lambda w: st.lists(st.sampled_from(["enqueue", "claim", "read"]),
                                     min_size=1, max_size=3),
    "privilege": lambda w: st.sampled_from(["enqueue", "claim", "read", "x"]),
    "errors": lambda w: st.lists(SMALL_TEXT, max_size=6),
    "retry_after": lambda w: st.sampled_from(GOOD_INTERVALS),
    "sweep_limit": lambda w: st.sampled_from([0, 1, 10, 10000, 10001]),
    "max_ids": lambda w: st.sampled_from([1, 3, 10000, 1_000_000, 1_000_001]),
    "max_error_bytes": lambda w: st.sampled_from([63, 64, 100, 8192, 1_048_576, 1_048_577]),
    "max_info_bytes": lambda w: st.sampled_from([1, 2, 50, 8192, 1_048_576, 1_048_577]),
    "max_payload_bytes": lambda w: st.sampled_from([15, 16, 64, 1_048_576, 104_857_600]),
    "min_priority": lambda w: st.sampled_from([-10, 0, 10, -(2**31)]),
    "max_priority": lambda w: st.sampled_from([-10, 0, 10, 2**31 - 1]),
    "max_batch": lambda w: st.sampled_from([0, 1, 5, 10000, 10001]),
    "max_lease": lambda w: st.sampled_from(["1 minute", "1 hour", "30 days", "31 days"]),
}


#: the type each name-specific strategy above draws values of
NAME_TYPES = {
    "queue": "pg_catalog.text", "worker_id": "pg_catalog.text", "ids": "pg_catalog._int8",
    "id": "pg_catalog.int8", "lease_token": "pg_catalog.int8",
    "lease_tokens": "pg_catalog._int8", "dedup_key": "pg_catalog.text",
    "role": "pg_catalog.text", "privileges": "pg_catalog._text",
    "privilege": "pg_catalog.text", "errors": "pg_catalog._text",
    "retry_after": "pg_catalog.interval", "max_lease": "pg_catalog.interval",
}


def param_strategy(world: World, fn: Function, name: str, type_: str,
                   has_default: bool) -> st.SearchStrategy[Any]:
    valid_by_type, hostile = BY_TYPE.get(type_, (lambda w: st.none(), st.none()))
    valid_fn = valid_by_type
    if name in BY_NAME and NAME_TYPES.get(name, "pg_catalog.int4") == type_:
        valid_fn = BY_NAME[name]
    valid = valid_fn(world)
    options = [valid, valid, valid, hostile, st.none()]
    if has_default:
        options.insert(0, st.just(OMIT))
    return st.one_of(*options)


@st.composite
def actions(draw: st.DrawFn, world: World) -> tuple[str, dict[str, Any]]:
    """One action: a call of a granted function with drawn arguments, or a clock move."""
    if draw(st.integers(0, 11)) == 0:
        return "advance", {"step": draw(st.sampled_from(
            ["10 seconds", "1 minute", "2 minutes", "1 hour", "1 day", "100 years"]))}
    fn = draw(st.sampled_from(world.functions))
    args = {}
    for p in fn.params:
        value = draw(param_strategy(world, fn, p.name, p.type, p.has_default))
        if value is not OMIT:
            args[p.name] = value
    names = {p.name for p in fn.params}
    # often, a coherent report: ids held under their tokens (one error etc. per id)
    if {"ids", "lease_tokens"} <= names and world.held and draw(st.booleans()):
        ids, tokens = draw(st.sampled_from(world.held))
        k = draw(st.integers(1, len(ids)))
        args["ids"], args["lease_tokens"] = ids[:k], tokens[:k]
        if "errors" in names:
            args["errors"] = draw(st.lists(SMALL_TEXT, min_size=k, max_size=k))
        for extra in ("retry_after", "fatal"):
            if extra in names and extra in args and draw(st.booleans()):
                args[extra] = [None] * k
        if draw(st.integers(0, 3)) == 0:  # every id (and its token, error...) twice
            for key in ("ids", "lease_tokens", "errors", "retry_after", "fatal"):
                if isinstance(args.get(key), list) and len(args[key]) == k:
                    # copies: psycopg refuses a list holding one inner list twice
                    args[key] = args[key] + copy.deepcopy(args[key])
    if {"id", "lease_token"} <= names and world.held and draw(st.booleans()):
        ids, tokens = draw(st.sampled_from(world.held))
        i = draw(st.integers(0, len(ids) - 1))
        args["id"], args["lease_token"] = ids[i], tokens[i]
    if "worker_id" in names and draw(st.booleans()):
        args["worker_id"] = "w-own" if world.login != PRODUCER else "w-other"
    return fn.name, args


# --------------------------------------------------------------------------- the runner


def describe(name: str, args: dict[str, Any]) -> str:
    """The call as SQL-ish text, long values cut (for failure messages)."""
    def plain(v: Any) -> Any:
        if isinstance(v, Jsonb):
            return plain(v.obj)
        if isinstance(v, list):
            return [plain(x) for x in v]
        return v

    def short(v: Any) -> str:
        text = repr(v) if isinstance(v, str) else json.dumps(plain(v), default=str)
        return text if len(text) <= 80 else f"{text[:60]}... ({len(text)} chars)"
    return f"pgclaim.{name}(" + ", ".join(f"{k} => {short(v)}" for k, v in args.items()) + ")"


class Runner:
    """Runs examples on one connection of the login's."""

    def __init__(self, db: SecDb, world: World, stats: Counter[str]) -> None:
        self.world = world
        self.fns = {f.name: f for f in world.functions}
        self.conn = db.login(world.login, autocommit=False)
        self.conn.execute("set statement_timeout = '60s'")
        self.conn.commit()
        self.stats = stats

    def one(self, sql: str, args: Any = None) -> Any:
        return one(self.conn, sql, args)

    def example(self, steps: list[tuple[str, dict[str, Any]]]) -> None:
        try:
            self.conn.execute("select pg_catalog.setseed(0.25)")
            for name, args in steps:
                self.step(name, args)
            self.finish()
        finally:
            self.conn.rollback()

    def step(self, name: str, args: dict[str, Any]) -> None:
        if name == "advance":
            self.one("select fuzzkit.advance(%s::interval)", (args["step"],))
            return
        call = describe(name, args)
        fn = self.fns[name]
        before, running = self.conn.execute(
            "select fuzzkit.digest(), fuzzkit.running()").fetchone()
        given_ = [p.name for p in fn.params if p.name in args]
        self.conn.execute("savepoint call")
        self.stats["calls"] += 1
        try:
            rows = self.conn.execute(fn.sql(given_), [args[n] for n in given_]).fetchall()
        except psycopg.Error as exc:
            self.conn.execute("rollback to savepoint call")
            state = exc.sqlstate or "none"
            self.stats[state] += 1
            assert state in DOCUMENTED, f"{call} raised {state}: {exc}"
            after, health = self.after(call, "fuzzkit.digest()")
            assert after == before, f"{call} ({state}) changed something"
        else:
            self.conn.execute("release savepoint call")
            self.stats["ok"] += 1
            result, health = self.after(call, "fuzzkit.after(%s)", [int(i) for i in running])
            self.check_success(name, args, rows, running, result, call)
        assert health["status"] in ("ok", "degraded", "failing"), health

    def after(self, call: str, check: str, *args: Any) -> tuple[Any, Any]:
        """``check``, and health() as the login, in one statement: after every call."""
        try:
            row = self.conn.execute(f"select {check}, pgclaim.health()", args).fetchone()
        except psycopg.Error as exc:
            raise AssertionError(f"monitoring (or the check) failed after {call}: {exc}"
                                 ) from exc
        assert row is not None
        return row[0], row[1]

    def check_success(self, name: str, args: dict[str, Any], rows: list[Any],
                      pre: dict[str, list[Any]], result: dict[str, Any], call: str) -> None:
        assert result["violations"] == [], f"after {call}: {result['violations']}"
        post, now_running = result["state"], result["running"]
        for rid, was in pre.items():
            now = post.get(rid)
            if now is None:  # deleted: only drop_queue deletes running records
                assert self.world.is_admin and name == "drop_queue", f"{call} deleted {rid}"
                continue
            expired, silent = was[5], was[6]
            if not expired and now[4] == "running":
                assert now[1] == was[1], f"{call}: record {rid} changed holder while leased"
            if self.world.is_admin or was[3] == self.world.login or now == was[:5]:
                continue
            # another role's record: only taken back, once its lease (or its worker) is gone
            taken_back = (name == "claim_batch" and expired
                          or name == "reclaim_orphans" and (expired or silent)) and (
                now[4] in ("pending", "failed") or now[4] == "running" and now[1] != was[1])
            assert taken_back, f"{call} touched record {rid} of {was[3]}: {was} -> {now}"
        if name == "claim_batch":
            size = args.get("batch_size", 100)
            assert len(rows) <= size, f"{call} returned {len(rows)} records"
            if rows:
                assert args["queue"] not in self.world.paused, f"{call} claimed from a paused queue"
            for row in rows:
                rid = str(row[0])
                assert row[1] == args["queue"], f"{call} returned a record of {row[1]}"
                assert rid not in pre or pre[rid][5], f"{call} handed out leased record {rid}"
                assert now_running[rid][0] == args["worker_id"]
                assert now_running[rid][3] == self.world.login

    def finish(self) -> None:
        """The login reads queue_stats itself (fuzzkit.after read it in its name)."""
        if self.world.reads_stats:
            self.conn.execute("select * from pgclaim.queue_stats").fetchall()


def run_fuzz(db: SecDb, login: str, examples: int, max_steps: int) -> Counter[str]:
    world = build_world(db, login)
    stats: Counter[str] = Counter()
    runner = Runner(db, world, stats)

    @settings(max_examples=examples, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck), report_multiple_bugs=False)
    @given(st.lists(actions(world), min_size=2, max_size=max_steps))
    def fuzz(steps: list[tuple[str, dict[str, Any]]]) -> None:
        runner.example(steps)

    fuzz()
    key = f"{login} ({'heavy' if examples > 500 else 'default'})"
    FUZZ_STATS[key] = dict(stats)
    return stats


#: examples per login in make test (about a thousand calls each), and behind --heavy
DEFAULT_EXAMPLES = {PRODUCER: 100, WORKER_A: 220, ADMIN: 220}
HEAVY_FACTOR = 25


@pytest.mark.parametrize("login", list(DEFAULT_EXAMPLES))
def test_fuzz_every_granted_function(db: SecDb, login: str) -> None:
    stats = run_fuzz(db, login, DEFAULT_EXAMPLES[login], 10)
    assert stats["ok"] > 0 and stats["calls"] > stats["ok"]


@pytest.mark.slow
@pytest.mark.parametrize("login", list(DEFAULT_EXAMPLES))
def test_fuzz_every_granted_function_long(db: SecDb, login: str) -> None:
    stats = run_fuzz(db, login, DEFAULT_EXAMPLES[login] * HEAVY_FACTOR, 12)
    assert stats["ok"] > 0 and stats["calls"] > stats["ok"]


# --------------------------------------------------------------------------- the checks fail

#: deliberately broken functions (one edit of the real file each), the login and the calls
#: that meet the bug, and what the fuzz's checks must then say
MUTANTS: dict[str, tuple[str, str, str, str, Callable[[World], list[Any]], str]] = {
    "reports ignore the holder role": (
        "20_internal/pgclaim._report.sql",
        "and (v_admin or coalesce(r.holder_role, v_me) = v_me)", "and true",
        WORKER_A,
        lambda w: [("release", {"worker_id": "w-other", "ids": w.held[2][0]})],
        "touched record"),
    "the claim sweep takes back live leases": (
        "20_internal/pgclaim._reclaim.sql",
        "and r.lease_until < v_now\n", "and r.lease_until < v_now + interval '1 day'\n",
        WORKER_A,
        lambda w: [("claim_batch", {"queue": "fz", "worker_id": "w-own", "batch_size": 100})],
        "changed holder while leased"),
    "enqueue accepts an infinite run_at": (
        "20_internal/pgclaim._check_enqueue.sql",
        "if not pg_catalog.isfinite(_check_enqueue.run_at) then",
        "if false then",
        PRODUCER,
        lambda w: [("enqueue", {"queue": "fz", "payload": Jsonb({}), "run_at": "-infinity"})],
        "monitoring (or the check) failed"),
    "a refused enqueue draws an id": (
        "30_api/pgclaim.enqueue.sql",
        "    v_q := pgclaim._queue(enqueue.queue, true);\n",
        ("    perform pg_catalog.nextval('pgclaim.records_id_seq');\n"
         "    v_q := pgclaim._queue(enqueue.queue, true);\n"),
        PRODUCER,
        lambda w: [("enqueue", {"queue": "fz", "payload": Jsonb({}), "priority": 5000})],
        "changed something"),
    "durations are not bounded": (
        "20_internal/pgclaim._check_interval.sql",
        "    if value > max then", "    if false then",
        WORKER_A,
        lambda w: [("claim_batch", {"queue": "fz", "worker_id": "w-own",
                                    "lease": "177000000 years"})],
        "raised 22008"),
}


@pytest.mark.parametrize("bug", list(MUTANTS))
def test_the_fuzz_checks_catch_a_broken_function(db: SecDb, bug: str) -> None:
    """Each check of the fuzz, fed the call that meets a deliberate bug, fails."""
    path, old, new, login, steps, says = MUTANTS[bug]
    world = build_world(db, login)
    db.su.execute(mutant(path, old, new))
    runner = Runner(db, world, Counter())
    with pytest.raises(AssertionError, match=re.escape(says)):
        runner.example(steps(world))
