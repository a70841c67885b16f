"""The API surface, checked against the catalog, so that adding a function cannot forget a
place: one file per function in sql/, every public function and view documented in
docs/sql.md with its exact arguments, defaults, argument types where written and return
type, every view with its columns, called by the client, tested by pgTAP, and every
SQLSTATE that sql/ raises documented (CONTRIBUTING.md lists the places); and every public
Python name documented, the asyncio names mirroring the blocking ones."""
from __future__ import annotations

import inspect
import re
from typing import Any

import psycopg
from pgdb import ROOT

import pgclaim
from pgclaim import _sql

DOCS = (ROOT / "docs" / "sql.md").read_text()
#: public functions the client does not call on purpose, with the reason
NOT_IN_CLIENT = {
    "schema_version": "read through health() and check_schema() (SCHEMA_VERSION)",
    "fence_trigger": "a trigger function: attached to the application's tables, never called",
}

CATALOG = """
select p.proname::text, p.pronargs, p.pronargdefaults,
    coalesce(p.proargnames[1:p.pronargs], '{}')::text[],
    array(select pg_catalog.format_type(t, null) from pg_catalog.unnest(p.proargtypes) as t),
    pg_catalog.pg_get_expr(p.proargdefaults, 0)
from pg_catalog.pg_proc as p
where p.pronamespace = 'pgclaim'::regnamespace
order by p.proname
"""


def catalog(conn: psycopg.Connection[Any]) -> dict[str, tuple[Any, ...]]:
    return {row[0]: row for row in conn.execute(CATALOG).fetchall()}


def documented_signatures() -> dict[str, list[tuple[str, str | None]]]:
    """``name(arg = default, ...)`` of each function in the tables of docs/sql.md."""
    out: dict[str, list[tuple[str, str | None]]] = {}
    for match in re.finditer(r"^\| `([a-z_]+)\(([^`]*)\)` \|", DOCS, re.MULTILINE):
        args: list[tuple[str, str | None]] = []
        for part in filter(None, (p.strip() for p in match.group(2).split(", "))):
            name, _, default = part.partition(" = ")
            args.append((name.split()[0], default or None))
        out[match.group(1)] = args
    return out


def test_one_file_per_function(conn: psycopg.Connection[Any]) -> None:
    files = {p.name.removeprefix("pgclaim.").removesuffix(".sql")
             for folder in ("20_internal", "30_api") for p in (ROOT / "sql" / folder).glob("*.sql")}
    assert set(catalog(conn)) == files
    assert all(not n.startswith("_") for n in
               (p.name.removeprefix("pgclaim.") for p in (ROOT / "sql" / "30_api").glob("*")))
    assert all(p.name.startswith("pgclaim._") for p in (ROOT / "sql" / "20_internal").glob("*"))


def test_docs_list_every_function_with_its_arguments_and_defaults(
        conn: psycopg.Connection[Any]) -> None:
    public = {name: row for name, row in catalog(conn).items() if not name.startswith("_")}
    documented = documented_signatures()
    assert set(documented) == set(public), "docs/sql.md lists exactly the public functions"
    for name, (_, nargs, ndefaults, argnames, argtypes, defaults) in public.items():
        doc = documented[name]
        assert [a for a, _ in doc] == argnames, f"{name}: argument names in docs/sql.md"
        catalog_defaults = [None] * (nargs - ndefaults)
        if ndefaults:
            values = conn.execute(f"select {defaults}").fetchone()
            assert values is not None
            catalog_defaults += list(values)
        for (arg, text), kind, actual in zip(doc, argtypes, catalog_defaults, strict=True):
            if text is None:
                assert len(catalog_defaults) - catalog_defaults.count(None) <= nargs
                continue
            stated = conn.execute(
                psycopg.sql.SQL("select {}::{}").format(
                    psycopg.sql.SQL(text), psycopg.sql.SQL(kind))).fetchone()
            assert stated == (actual,), f"{name}({arg}): docs say {text}, the SQL {actual!r}"
        has_default = [text is not None for _, text in doc]
        assert has_default == [i >= nargs - ndefaults for i in range(nargs)], (
            f"{name}: docs/sql.md shows a default exactly where the SQL has one")


def test_docs_list_every_view(conn: psycopg.Connection[Any]) -> None:
    views = {r[0] for r in conn.execute(
        "select c.relname::text from pg_catalog.pg_class as c"
        " where c.relnamespace = 'pgclaim'::regnamespace and c.relkind = 'v'").fetchall()}
    documented = set(re.findall(r"^\| `([a-z_]+)` \| ", DOCS, re.MULTILINE))
    assert views <= documented


def test_every_public_function_is_called_by_the_client(conn: psycopg.Connection[Any]) -> None:
    text = (ROOT / "client" / "pgclaim" / "_sql.py").read_text()
    called = set(re.findall(r"pgclaim\.([a-z_]+)\(", text))
    called |= {f for f in ("create_queue", "alter_queue") if f'"{f}"' in text}
    for name in (n for n in catalog(conn) if not n.startswith("_")):
        assert name in called or name in NOT_IN_CLIENT, f"{name} is not called in _sql.py"
    assert hasattr(_sql, "SCHEMA_VERSION")


def test_every_public_function_has_pgtap_tests(conn: psycopg.Connection[Any]) -> None:
    folders = {p.name for p in (ROOT / "tests" / "sql").iterdir() if p.is_dir()}
    tested_in = (ROOT / "tests" / "sql")
    for name in (n for n in catalog(conn) if not n.startswith("_")):
        assert name in folders or any(
            f"pgclaim.{name}(" in p.read_text() for p in tested_in.rglob("*.sql")
            if p.parent.name != "_setup"), f"no pgTAP test calls {name}"


def test_every_sqlstate_raised_is_documented() -> None:
    raised = set()
    for path in (ROOT / "sql").rglob("*.sql"):
        raised |= set(re.findall(r"errcode = '([0-9A-Z]{5})'", path.read_text()))
    table = DOCS[DOCS.index("## Errors"):DOCS.index("## Roles")]
    documented = set(re.findall(r"^\| `([0-9A-Z]{5})` \|", table, re.MULTILINE))
    assert raised <= documented, f"undocumented: {sorted(raised - documented)}"
    # lock_timeout raises 55P03 and the privilege system 42501: documented too
    assert {"55P03", "42501"} <= documented
    assert documented - raised <= {"55P03", "42501"}, "documented but never raised"


def normalised_type(text: str) -> str:
    """A type as docs/sql.md writes it, in the catalog's spelling, without spaces."""
    text = text.replace("`", "").strip().lower()
    text = re.sub(r"\bint\b", "integer", text)
    text = re.sub(r"\btimestamptz\b", "timestamp with time zone", text)
    return re.sub(r"\s+", "", text)


def test_docs_state_each_function_return_type(conn: psycopg.Connection[Any]) -> None:
    stated = {m.group(1): m.group(2) for m in re.finditer(
        r"^\| `([a-z_]+)\([^`]*\)` \| ([^|]+) \|", DOCS, re.MULTILINE)}
    actual = dict(conn.execute(
        "select p.proname::text, pg_catalog.pg_get_function_result(p.oid)"
        " from pg_catalog.pg_proc as p"
        " where p.pronamespace = 'pgclaim'::regnamespace and p.proname !~ '^_'").fetchall())
    assert set(stated) == set(actual)
    for name, result in actual.items():
        assert normalised_type(stated[name]) == normalised_type(result), (
            f"{name}: docs/sql.md says it returns {stated[name].strip()}, the SQL {result}")


def test_docs_argument_types_where_stated(conn: psycopg.Connection[Any]) -> None:
    """An argument written with its type (``ids bigint[]``) has that type."""
    checked = 0
    for match in re.finditer(r"^\| `([a-z_]+)\(([^`]*)\)` \|", DOCS, re.MULTILINE):
        name, args = match.group(1), match.group(2)
        argnames, argtypes = catalog(conn)[name][3:5]
        types = dict(zip(argnames, argtypes, strict=True))
        for part in filter(None, (p.strip() for p in args.split(", "))):
            words = part.partition(" = ")[0].split(maxsplit=1)
            if len(words) == 2:
                assert normalised_type(words[1]) == normalised_type(types[words[0]]), (
                    f"{name}({words[0]}): docs say {words[1]}, the SQL {types[words[0]]}")
                checked += 1
    assert checked > 0


def test_docs_list_each_view_with_its_columns(conn: psycopg.Connection[Any]) -> None:
    views = DOCS.split("\n### Views\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([a-z_]+)` \| [^|]+ \| ([^|]+) \|$", views, re.MULTILINE)
    assert {view for view, _ in rows} == {r[0] for r in conn.execute(
        "select c.relname::text from pg_catalog.pg_class as c"
        " where c.relnamespace = 'pgclaim'::regnamespace and c.relkind = 'v'").fetchall()}
    for view, columns in rows:
        documented = [re.sub(r"\s*\(.*?\)", "", c).strip() for c in
                      re.sub(r"\([^)]*\)", "", columns).split(",")]
        actual = [r[0] for r in conn.execute(
            "select a.attname::text from pg_catalog.pg_attribute as a"
            " where a.attrelid = %s::regclass and a.attnum > 0 and not a.attisdropped"
            " order by a.attnum", [f"pgclaim.{view}"]).fetchall()]
        assert documented == actual, f"docs/sql.md: the columns of view {view}"


# -- the Python surface ---------------------------------------------------------------------

def public_members(obj: Any) -> dict[str, Any]:
    """The public attributes a class defines or inherits from pgclaim's own classes."""
    return {name: member for name, member in inspect.getmembers(obj)
            if not name.startswith("_")
            and (getattr(member, "__module__", None) or "pgclaim").startswith("pgclaim")
            and (inspect.isfunction(member) or isinstance(member, property))}


def test_every_public_python_name_has_a_docstring() -> None:
    undocumented = []
    for name in pgclaim.__all__:
        obj = getattr(pgclaim, name)
        if name == "__version__":
            assert isinstance(obj, str)
            continue
        if not inspect.getdoc(obj):
            undocumented.append(name)
        if inspect.isclass(obj):
            undocumented += [f"{name}.{m}" for m, member in public_members(obj).items()
                             if not inspect.getdoc(member)]
    assert undocumented == []


def test_the_asyncio_names_mirror_the_blocking_ones() -> None:
    """``AsyncQueueClient`` and ``AsyncWorker`` are exported and offer what ``QueueClient``
    and ``Worker`` offer, under the same names and parameters (test_aio_client.py compares
    every method's parameters)."""
    assert {"AsyncQueueClient", "AsyncWorker"} <= set(pgclaim.__all__)
    assert set(public_members(pgclaim.QueueClient)) | {"open"} == set(
        public_members(pgclaim.AsyncQueueClient))
    assert set(public_members(pgclaim.Worker)) == set(public_members(pgclaim.AsyncWorker))
    assert inspect.signature(pgclaim.Worker).parameters.keys() == inspect.signature(
        pgclaim.AsyncWorker).parameters.keys()
    for name in ("run",):
        assert inspect.iscoroutinefunction(getattr(pgclaim.AsyncWorker, name))
        assert inspect.signature(getattr(pgclaim.AsyncWorker, name)).parameters.keys() == \
            inspect.signature(getattr(pgclaim.Worker, name)).parameters.keys()
