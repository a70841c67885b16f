"""Installing cannot be captured.

``pgclaim.migrate.migrate`` on fresh, empty databases (``template0``):

- operators and a domain that a low-privilege role placed in ``public`` beforehand are not
  bound into pgclaim's indexes, views or columns, and never run (the same operator is bound
  by a plain ``create index`` made with the usual search_path: the check can fail);
- a schema ``pgclaim`` someone else made, or a ``pgclaim_*`` role that pgclaim did not make
  (or that can log in), stops the install with 42710 until ``adopt_existing``;
- a role with only CREATEROLE and CREATE on the database installs it, and everything it made
  belongs to pgclaim_owner;
- a function pgclaim_owner creates later is not executable by PUBLIC (one created by
  another role is: the default privileges are what prevent it).
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from _seckit import ADMIN, PRODUCER, WORKER_A, claim, one, refused
from pgdb import ROOT, create_database, db_url, drop_database
from psycopg import sql
from psycopg.types.json import Jsonb
from yoyo import get_backend, read_migrations  # type: ignore[import-untyped]

from pgclaim._resources import data_dir
from pgclaim.errors import InstallRefused
from pgclaim.migrate import FIRST_MIGRATION, migrate, yoyo_url

SQUATTER = "pgclaim_t_squatter"
INSTALLER = "pgclaim_t_installer"
MARKER = "pgclaim role (made by the pgclaim installer)"


def url_as(url: str, user: str) -> str:
    """``url`` with its user name replaced."""
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"{user}@{host}"))


@contextlib.contextmanager
def fresh_database(cluster_url: str) -> Iterator[str]:
    """An empty database made from template0; yields its URL and drops it afterwards."""
    name = create_database(cluster_url, "template0")
    try:
        yield db_url(cluster_url, name)
    finally:
        drop_database(cluster_url, name)


@contextlib.contextmanager
def temp_role(cluster_url: str, name: str, attrs: str) -> Iterator[str]:
    """A login role made for one test, dropped when it ends (with what it owns)."""
    with psycopg.connect(cluster_url, autocommit=True) as su:
        su.execute(f'drop role if exists "{name}"')
        su.execute(f'create role "{name}" login {attrs}')
    try:
        yield name
    finally:
        with psycopg.connect(cluster_url, autocommit=True) as su:
            su.execute(f'drop role if exists "{name}"')


def superuser(url: str) -> psycopg.Connection[Any]:
    return psycopg.connect(url, autocommit=True)


# --------------------------------------------------------------------------- (a) operators

#: (operator, left, right, body): planted in public by a role that may create there
PLANTED = [
    ("=", "anyenum", "text", "a::text = b"),
    ("=", "text", "anyenum", "a = b::text"),
    ("=", "anyenum", "anyenum", "a::text = b::text"),
    ("<>", "anyenum", "text", "a::text <> b"),
    ("=", "text", "text", "a operator(pg_catalog.=) b"),
    ("<", "timestamptz", "timestamptz", "a operator(pg_catalog.<) b"),
    ("<=", "timestamptz", "timestamptz", "a operator(pg_catalog.<=) b"),
    (">", "timestamptz", "timestamptz", "a operator(pg_catalog.>) b"),
]


def plant_in_public(url: str) -> None:
    """As a low-privilege login with CREATE on public: operators whose functions count
    their calls in a sequence (immutable, so that an index predicate would accept them),
    and a domain named timestamptz."""
    with superuser(url) as su:
        su.execute(f'grant create on schema public to "{SQUATTER}"')
    with psycopg.connect(url_as(url, SQUATTER), autocommit=True) as sq:
        sq.execute("create sequence public.evil_hits")
        sq.execute("grant usage, select on sequence public.evil_hits to public")
        for i, (op, left, right, body) in enumerate(PLANTED):
            sq.execute(f"""
                create function public.evil_{i}(a {left}, b {right}) returns boolean
                language plpgsql immutable as $f$
                begin
                    perform pg_catalog.nextval('public.evil_hits');
                    return {body};
                end $f$""")
            sq.execute(f"create operator public.{op} (leftarg = {left}, rightarg = {right}, "
                       f"function = public.evil_{i})")
        sq.execute("create function public.evil_check() returns boolean language plpgsql "
                   "immutable as $f$ begin perform pg_catalog.nextval('public.evil_hits'); "
                   "return true; end $f$")
        sq.execute("create domain public.timestamptz as pg_catalog.timestamptz "
                   "check (public.evil_check())")


def evil_hits(conn: psycopg.Connection[Any]) -> int:
    last, called = conn.execute("select last_value, is_called from public.evil_hits").fetchone()
    return int(last) if called else 0


#: what depends on an operator, function or type of schema public, with the schema of the
#: dependent object (its table's for an index, a view's rule, a column or a default)
BOUND_TO_PUBLIC = """
select d.classid::regclass::text as kind,
    case d.refclassid
        when 'pg_catalog.pg_operator'::regclass then d.refobjid::regoperator::text
        when 'pg_catalog.pg_proc'::regclass then d.refobjid::regprocedure::text
        else d.refobjid::regtype::text
    end as used,
    case d.classid
        when 'pg_catalog.pg_class'::regclass then
            (select c.relnamespace from pg_catalog.pg_class as c where c.oid = d.objid)
        when 'pg_catalog.pg_rewrite'::regclass then
            (select c.relnamespace from pg_catalog.pg_rewrite as r
             inner join pg_catalog.pg_class as c on c.oid = r.ev_class where r.oid = d.objid)
        when 'pg_catalog.pg_attrdef'::regclass then
            (select c.relnamespace from pg_catalog.pg_attrdef as a
             inner join pg_catalog.pg_class as c on c.oid = a.adrelid where a.oid = d.objid)
        when 'pg_catalog.pg_trigger'::regclass then
            (select c.relnamespace from pg_catalog.pg_trigger as t
             inner join pg_catalog.pg_class as c on c.oid = t.tgrelid where t.oid = d.objid)
        when 'pg_catalog.pg_constraint'::regclass then
            (select c.connamespace from pg_catalog.pg_constraint as c where c.oid = d.objid)
        when 'pg_catalog.pg_proc'::regclass then
            (select p.pronamespace from pg_catalog.pg_proc as p where p.oid = d.objid)
        when 'pg_catalog.pg_type'::regclass then
            (select t.typnamespace from pg_catalog.pg_type as t where t.oid = d.objid)
        when 'pg_catalog.pg_operator'::regclass then
            (select o.oprnamespace from pg_catalog.pg_operator as o where o.oid = d.objid)
    end::regnamespace::text as in_schema
from pg_catalog.pg_depend as d
where (d.refclassid = 'pg_catalog.pg_operator'::regclass and d.refobjid in (
          select o.oid from pg_catalog.pg_operator as o
          where o.oprnamespace = 'public'::regnamespace))
   or (d.refclassid = 'pg_catalog.pg_proc'::regclass and d.refobjid in (
          select p.oid from pg_catalog.pg_proc as p
          where p.pronamespace = 'public'::regnamespace))
   or (d.refclassid = 'pg_catalog.pg_type'::regclass and d.refobjid in (
          select t.oid from pg_catalog.pg_type as t
          where t.typnamespace = 'public'::regnamespace))
"""


def bound_to_public(conn: psycopg.Connection[Any], outside: bool) -> list[tuple[Any, ...]]:
    """The uses of public's planted objects by objects outside public (``outside``), or by
    objects in public other than the planted ones themselves."""
    rows = conn.execute(BOUND_TO_PUBLIC).fetchall()
    if outside:
        return [r for r in rows if r[2] != "public"]
    return [r for r in rows if r[2] == "public" and r[0] in ("pg_class", "pg_rewrite")]


EXPRESSIONS = """
select pg_catalog.pg_get_expr(i.indpred, i.indrelid)
from pg_catalog.pg_index as i
inner join pg_catalog.pg_class as c on c.oid = i.indexrelid
where c.relnamespace = %s::regnamespace and i.indpred is not null
union all
select pg_catalog.pg_get_viewdef(c.oid)
from pg_catalog.pg_class as c
where c.relnamespace = %s::regnamespace and c.relkind = 'v'
"""


def foreign_columns(conn: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    """Columns of pgclaim's tables whose type is neither pg_catalog's nor pgclaim's."""
    return conn.execute("""
        select a.attrelid::regclass::text, a.attname::text, a.atttypid::regtype::text
        from pg_catalog.pg_attribute as a
        inner join pg_catalog.pg_class as c on c.oid = a.attrelid
        inner join pg_catalog.pg_type as t on t.oid = a.atttypid
        where c.relnamespace = 'pgclaim'::regnamespace and a.attnum > 0
          and t.typnamespace not in ('pg_catalog'::regnamespace, 'pgclaim'::regnamespace)
    """).fetchall()


def lifecycle(url: str, queue: str = "iq") -> None:
    """A queue, an enqueue, a claim and a completion, each from its own login."""
    with psycopg.connect(url_as(url, ADMIN), autocommit=True) as admin:
        admin.execute("select pgclaim.create_queue(%s)", (queue,))
    with psycopg.connect(url_as(url, PRODUCER), autocommit=True) as producer:
        producer.execute("select pgclaim.enqueue(%s, %s)", (queue, Jsonb({"n": 1})))
    with psycopg.connect(url_as(url, WORKER_A), autocommit=True) as worker:
        ids, tokens = claim(worker, queue, "wi", 5)
        assert len(ids) == 1
        assert one(worker, "select pgclaim.complete('wi', %s, %s)", (ids, tokens)) == 1
        # (no operator in the test's own statements: the database may put public first)
        stats = dict(worker.execute("select queue, completed from pgclaim.queue_stats"
                                    ).fetchall())
        assert stats[queue] == 1


@pytest.mark.parametrize("installer_path", ["default", "public first"])
def test_operators_planted_in_public_are_not_bound_by_the_install(
        cluster_url: str, security_roles: None, installer_path: str) -> None:
    with temp_role(cluster_url, SQUATTER, ""), fresh_database(cluster_url) as url:
        plant_in_public(url)
        with superuser(url) as su:
            if installer_path == "public first":
                name = one(su, "select pg_catalog.current_database()")
                su.execute(f'alter database "{name}" set search_path = public, pg_catalog')
            assert migrate(url)
        with superuser(url) as su:
            su.execute("set search_path = pg_catalog")  # so that expressions name schemas
            assert bound_to_public(su, outside=True) == []
            assert foreign_columns(su) == []
            texts = [r[0] for r in su.execute(EXPRESSIONS, ("pgclaim", "pgclaim")).fetchall()]
            assert texts and all("public." not in t for t in texts), texts
            hits_after_install = evil_hits(su)
        lifecycle(url)
        with superuser(url) as su:
            assert hits_after_install == 0 and evil_hits(su) == 0

            # the attack does work on objects made with the usual search_path: an index
            # predicate and a view bind the planted operator, and it runs
            su.execute("reset search_path")
            su.execute("create table public.t_demo (s pgclaim.status)")
            su.execute("create index t_demo_idx on public.t_demo (s) where s = 'pending'")
            su.execute("create view public.t_demo_v as select * from public.t_demo "
                       "where s = 'running'")
            su.execute("set search_path = pg_catalog")
            bound = bound_to_public(su, outside=False)
            assert {r[:2] for r in bound} == {("pg_class", "public.=(anyenum,text)"),
                                             ("pg_rewrite", "public.=(anyenum,text)")}, bound
            texts = [r[0] for r in su.execute(EXPRESSIONS, ("public", "public")).fetchall()]
            assert texts and all("OPERATOR(public.=)" in t for t in texts), texts
            su.execute("insert into public.t_demo values ('pending')")
            assert evil_hits(su) > 0


# --------------------------------------------------------------------------- (b) schema


def test_an_existing_schema_pgclaim_is_not_adopted_silently(
        cluster_url: str, security_roles: None) -> None:
    with temp_role(cluster_url, SQUATTER, ""), fresh_database(cluster_url) as url:
        with superuser(url) as su:
            name = one(su, "select pg_catalog.current_database()")
            su.execute(f'grant create on database "{name}" to "{SQUATTER}"')
        with psycopg.connect(url_as(url, SQUATTER), autocommit=True) as sq:
            sq.execute("create schema pgclaim")
        with pytest.raises(InstallRefused) as err:
            migrate(url)
        assert err.value.sqlstate == "42710"
        assert "schema pgclaim already exists" in str(err.value)
        with superuser(url) as su:
            assert one(su, "select count(*) from pg_catalog.pg_proc "
                       "where pronamespace = 'pgclaim'::regnamespace") == 0
            assert one(su, "select nspowner::regrole::text from pg_catalog.pg_namespace "
                       "where nspname = 'pgclaim'") == SQUATTER

        assert migrate(url, adopt_existing=True)
        with superuser(url) as su:
            assert one(su, "select nspowner::regrole::text from pg_catalog.pg_namespace "
                       "where nspname = 'pgclaim'") == "pgclaim_owner"
            assert not one(su, "select pg_catalog.has_schema_privilege(%s, 'pgclaim', "
                           "'CREATE')", (SQUATTER,))
            su.execute("drop owned by " + f'"{SQUATTER}"')
        lifecycle(url)


def forge_an_earlier_install(url: str, installer: str) -> None:
    """As a login with nothing but CREATE on the database: release 0.1.0 installed with
    yoyo under its own name, its bookkeeping in a schema named like the installer (first on
    the installer's search_path, as "$user"), and a trigger of its own on pgclaim.queues
    that writes down whom it runs as."""
    with superuser(url) as su:
        name = one(su, "select pg_catalog.current_database()")
        su.execute(f'grant create on database "{name}" to "{SQUATTER}"')
        su.execute(f'alter role "{SQUATTER}" in database "{name}" '
                   f'set search_path = "{installer}"')
    with psycopg.connect(url_as(url, SQUATTER), autocommit=True) as sq:
        sq.execute(f'create schema "{installer}"')
    backend = get_backend(yoyo_url(url_as(url, SQUATTER)))
    try:
        first = read_migrations(str(data_dir("migrations"))).filter(
            lambda m: m.id == FIRST_MIGRATION)
        with backend.lock():
            backend.apply_migrations(backend.to_apply(first))
    finally:
        backend.connection.close()
    with psycopg.connect(url_as(url, SQUATTER), autocommit=True) as sq:
        sq.execute(f'grant usage on schema "{installer}" to public')
        sq.execute(f'create table "{installer}".spy (who text)')
        sq.execute(f'grant insert on "{installer}".spy to public')
        sq.execute(f'create function "{installer}".spy() returns trigger language plpgsql as '
                   f"$f$ begin insert into \"{installer}\".spy values (current_user); "
                   "return new; end $f$")
        sq.execute("create trigger spy after insert on pgclaim.queues for each row "
                   f'execute function "{installer}".spy()')


def test_a_forged_earlier_install_is_not_upgraded(cluster_url: str,
                                                  security_roles: None) -> None:
    """yoyo's bookkeeping says release 0.1.0 is installed, so the install is taken for an
    upgrade, which passes every object of schema pgclaim to pgclaim_owner: the trigger the
    schema's maker left would then run as pgclaim_owner. The upgrade is refused (42710)
    because the schema belongs to neither pgclaim_owner nor the installer; adopting it on
    purpose shows what the refusal prevents."""
    with temp_role(cluster_url, SQUATTER, ""), fresh_database(cluster_url) as url:
        with superuser(url) as su:
            installer = one(su, "select current_user::text")
        forge_an_earlier_install(url, installer)
        with pytest.raises(InstallRefused) as err:
            migrate(url)
        assert err.value.sqlstate == "42710"
        assert f"belongs to role {SQUATTER}" in str(err.value)
        with superuser(url) as su:
            assert one(su, "select nspowner::regrole::text from pg_catalog.pg_namespace "
                       "where nspname = 'pgclaim'") == SQUATTER
            assert one(su, "select pgclaim.schema_version()") == 1

        assert migrate(url, adopt_existing=True) == sorted(
            m.name.removesuffix(".sql") for m in (ROOT / "migrations").glob("000*.sql")
            if not m.name.endswith(".rollback.sql") and m.name != "0001_initial.sql")
        with psycopg.connect(url_as(url, ADMIN), autocommit=True) as admin:
            admin.execute("select pgclaim.create_queue('spied')")
        with superuser(url) as su:
            assert su.execute(f'select who from "{installer}".spy').fetchall() == [
                ("pgclaim_owner",)]


# --------------------------------------------------------------------------- (c) roles

ALTERATIONS = {
    "unmarked": ("pgclaim_producer", "comment on role pgclaim_producer is null"),
    "login": ("pgclaim_admin", "alter role pgclaim_admin login"),
    "createdb": ("pgclaim_worker", "alter role pgclaim_worker createdb"),
}


@contextlib.contextmanager
def altered_role(cluster_url: str, role: str, alteration: str) -> Iterator[None]:
    """Alters a real pgclaim role for the duration of a test, and always restores it:
    roles are cluster-wide, and the other tests of this run install with them."""
    with psycopg.connect(cluster_url, autocommit=True) as su:
        login, createdb = su.execute(
            "select rolcanlogin, rolcreatedb from pg_catalog.pg_roles where rolname = %s",
            (role,)).fetchone()
        comment = one(su, "select pg_catalog.shobj_description(%s::regrole, 'pg_authid')",
                      (role,))
        su.execute(alteration)
    try:
        yield
    finally:
        with psycopg.connect(cluster_url, autocommit=True) as su:
            su.execute(f"alter role {role} {'login' if login else 'nologin'} "
                       f"{'createdb' if createdb else 'nocreatedb'}")
            su.execute(f"comment on role {role} is {sql.quote(comment)}"
                       if comment is not None else f"comment on role {role} is null")


def role_state(url: str, role: str) -> tuple[Any, ...]:
    with superuser(url) as su:
        row = su.execute(
            "select rolcanlogin, rolcreatedb, "
            "pg_catalog.shobj_description(oid, 'pg_authid') from pg_catalog.pg_roles "
            "where rolname = %s", (role,)).fetchone()
        assert row is not None
        return tuple(row)


@pytest.mark.parametrize("case", list(ALTERATIONS))
def test_a_pgclaim_role_someone_else_made_is_not_adopted_silently(
        cluster_url: str, security_roles: None, case: str) -> None:
    role, alteration = ALTERATIONS[case]
    with altered_role(cluster_url, role, alteration), fresh_database(cluster_url) as url:
        before = role_state(url, role)
        assert before[2] != MARKER or before[0] or before[1]
        with pytest.raises(InstallRefused) as err:
            migrate(url)
        assert err.value.sqlstate == "42710"
        assert f"role {role} already exists" in str(err.value)
        assert role_state(url, role) == before
        with superuser(url) as su:
            assert one(su, "select pg_catalog.to_regnamespace('pgclaim') is null")

        assert migrate(url, adopt_existing=True)
        after = role_state(url, role)
        assert after[2] == MARKER and after[:2] == before[:2]
        with superuser(url) as su:
            assert one(su, "select pgclaim.schema_version()") >= 2


# --------------------------------------------------------------------------- (d), (e)


def test_the_installer_needs_no_superuser(cluster_url: str, security_roles: None) -> None:
    with temp_role(cluster_url, INSTALLER, "nosuperuser createrole"), \
            fresh_database(cluster_url) as url:
        with superuser(url) as su:
            name = one(su, "select pg_catalog.current_database()")
            su.execute(f'grant create on database "{name}" to "{INSTALLER}"')
            su.execute(f'grant create on schema public to "{INSTALLER}"')
        assert migrate(url_as(url, INSTALLER))
        with superuser(url) as su:
            assert not one(su, "select rolsuper from pg_catalog.pg_roles where rolname = %s",
                           (INSTALLER,))
            owners = su.execute("""
                select 'schema', nspowner::regrole::text from pg_catalog.pg_namespace
                where nspname = 'pgclaim'
                union select 'relation', relowner::regrole::text from pg_catalog.pg_class
                where relnamespace = 'pgclaim'::regnamespace
                union select 'function', proowner::regrole::text from pg_catalog.pg_proc
                where pronamespace = 'pgclaim'::regnamespace
                union select 'type', typowner::regrole::text from pg_catalog.pg_type
                where typnamespace = 'pgclaim'::regnamespace
            """).fetchall()
            assert {o for _, o in owners} == {"pgclaim_owner"}, owners
            assert {k for k, _ in owners} == {"schema", "relation", "function", "type"}
        lifecycle(url)
        assert_later_functions_are_not_public(url)


def assert_later_functions_are_not_public(url: str) -> None:
    with superuser(url) as su:
        su.execute("set role pgclaim_owner")
        su.execute("create function pgclaim.t_added_later() returns int language sql "
                   "security definer set search_path = pg_catalog, pg_temp as 'select 1'")
        su.execute("reset role")
        # the control: the same function made by another role is executable by PUBLIC
        su.execute("create function pgclaim.t_made_by_another() returns int language sql "
                   "as 'select 1'")
    with psycopg.connect(url_as(url, WORKER_A), autocommit=True) as worker:
        with refused("42501"):
            worker.execute("select pgclaim.t_added_later()")
        assert one(worker, "select pgclaim.t_made_by_another()") == 1
    with superuser(url) as su:
        assert not one(su, "select pg_catalog.has_function_privilege('public', "
                       "'pgclaim.t_added_later()', 'EXECUTE')")
        su.execute("drop function pgclaim.t_added_later(), pgclaim.t_made_by_another()")


def test_functions_pgclaim_owner_adds_later_are_not_executable_by_public(dsn: str,
                                                                         security_roles: None
                                                                         ) -> None:
    assert_later_functions_are_not_public(dsn)
