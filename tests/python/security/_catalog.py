"""What a login may call in schema pgclaim, read from the catalog (so that a function or
view a release adds is attacked without editing the suite), and how to call it."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg

CATALOG_SQL = """
select p.oid::pg_catalog.int8, p.proname::pg_catalog.text,
    coalesce(p.proargnames, '{}'::pg_catalog.text[]),
    coalesce(p.proargmodes::pg_catalog.text[], '{}'::pg_catalog.text[]),
    array(
        select pg_catalog.format('%%I.%%I', n.nspname, t.typname)
        from pg_catalog.unnest(p.proargtypes::pg_catalog.oid[]) with ordinality as a (typ, i)
        inner join pg_catalog.pg_type as t on t.oid = a.typ
        inner join pg_catalog.pg_namespace as n on n.oid = t.typnamespace
        order by a.i),
    p.pronargdefaults::pg_catalog.int4,
    p.prosecdef,
    pg_catalog.pg_get_function_identity_arguments(p.oid)
from pg_catalog.pg_proc as p
where p.pronamespace = 'pgclaim'::pg_catalog.regnamespace and p.prokind = 'f'
  and pg_catalog.has_function_privilege(%s, p.oid, 'EXECUTE')
  -- a trigger function cannot be called (fence_trigger: tests/python/test_fencing.py)
  and p.prorettype <> 'pg_catalog.trigger'::pg_catalog.regtype
order by p.proname, p.oid
"""

VIEWS_SQL = """
select c.relname::pg_catalog.text from pg_catalog.pg_class as c
where c.relnamespace = 'pgclaim'::pg_catalog.regnamespace and c.relkind in ('v', 'm', 'r')
  and pg_catalog.has_table_privilege(%s, c.oid, 'SELECT')
order by c.relname
"""


@dataclass(frozen=True)
class Param:
    """An input parameter: its name, its type (schema-qualified) and whether it has a
    default (so that a call may leave it out)."""

    name: str
    type: str
    has_default: bool

    @property
    def is_array(self) -> bool:
        return self.type.split(".", 1)[1].startswith("_")


@dataclass(frozen=True)
class Function:
    """A function of schema pgclaim that a role may execute."""

    oid: int
    name: str
    params: tuple[Param, ...]
    security_definer: bool
    signature: str

    def sql(self, given: list[str]) -> str:
        """``select * from pgclaim.<name>(p => %s::type, ...)`` for the parameters given,
        in named notation (every value cast to its schema-qualified type)."""
        types = {p.name: p.type for p in self.params}
        args = ", ".join(f'"{n}" => %s::{types[n]}' for n in given)
        return f'select * from pgclaim."{self.name}"({args})'


def granted_functions(conn: psycopg.Connection[Any], role: str) -> list[Function]:
    """Every function of schema pgclaim that ``role`` may execute (directly or through
    its memberships), with its input parameters, from pg_proc."""
    out = []
    for oid, name, argnames, argmodes, types, ndefaults, secdef, sig in conn.execute(
            CATALOG_SQL, (role,)).fetchall():
        modes = argmodes or ["i"] * len(argnames)
        in_names = [n for n, m in zip(argnames, modes) if m in ("i", "b", "v")]
        assert len(in_names) == len(types), (name, argnames, types)
        first_default = len(types) - ndefaults
        params = tuple(Param(n, t, i >= first_default)
                       for i, (n, t) in enumerate(zip(in_names, types)))
        out.append(Function(int(oid), name, params, bool(secdef), sig))
    return out


def granted_views(conn: psycopg.Connection[Any], role: str) -> list[str]:
    """Every relation of schema pgclaim that ``role`` may select from."""
    return [r[0] for r in conn.execute(VIEWS_SQL, (role,)).fetchall()]


def call(conn: psycopg.Connection[Any], fn: Function, args: dict[str, Any]) -> list[Any]:
    """Calls ``fn`` on ``conn`` with ``args`` (by name); returns its rows."""
    unknown = set(args) - {p.name for p in fn.params}
    assert not unknown, f"{fn.name} has no parameter {unknown}"
    names = [p.name for p in fn.params if p.name in args]
    return conn.execute(fn.sql(names), [args[n] for n in names]).fetchall()
