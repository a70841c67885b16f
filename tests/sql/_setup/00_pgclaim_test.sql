-- Test-only fixtures, loaded into the pgTAP database after sql/ (never installed
-- in production). Each test file runs in begin ... rollback, so a replaced clock
-- or a created queue vanishes with its file.
create schema pgclaim_test;

-- Freezes pgclaim's clock at ts (replaces pgclaim._now() for this transaction).
create function pgclaim_test.set_now(ts timestamptz)
returns timestamptz
language plpgsql
as $fn$
begin
    execute pg_catalog.format(
        'create or replace function pgclaim._now() returns timestamptz '
        'language sql volatile set search_path = pg_catalog, pg_temp as %L',
        pg_catalog.format('select %L::timestamptz', ts));
    return ts;
end;
$fn$;

-- Moves the (frozen) clock forward by step.
create function pgclaim_test.advance(step interval)
returns timestamptz
language sql
as $fn$
    select pgclaim_test.set_now(pgclaim._now() + step);
$fn$;

-- The status of a record, unfinished (pgclaim.records) or finished (pgclaim.finished).
create function pgclaim_test.status(record_id bigint)
returns text
language sql
as $fn$
    select r.status::text from pgclaim.records as r where r.id = record_id
    union all
    select f.status::text from pgclaim.finished as f where f.id = record_id;
$fn$;

-- A digest of everything a call could change: records (unfinished and finished),
-- queues, their counters, workers, config, per-queue grants, the id sequence and
-- FIFO groups, schedules
-- (a rejected call must not even draw an id).
create function pgclaim_test.digest()
returns text
language sql
as $fn$
    select pg_catalog.concat_ws('/',
        (select pg_catalog.md5(coalesce(pg_catalog.string_agg(r::text, ',' order by r.id), ''))
            from pgclaim.records as r),
        (select pg_catalog.md5(coalesce(pg_catalog.string_agg(f::text, ',' order by f.id), ''))
            from pgclaim.finished as f),
        (select pg_catalog.md5(coalesce(pg_catalog.string_agg(
            t::text, ',' order by t.queue, t.slot), ''))
            from pgclaim.queue_totals as t),
        (select pg_catalog.md5(coalesce(pg_catalog.string_agg(q::text, ',' order by q.queue), ''))
            from pgclaim.queues as q),
        (select pg_catalog.md5(
            coalesce(pg_catalog.string_agg(w::text, ',' order by w.worker_id), ''))
            from pgclaim.workers as w),
        (select c::text from pgclaim.config as c),
        (select pg_catalog.md5(coalesce(pg_catalog.string_agg(
            g::text, ',' order by g.queue, g.privilege, g.grantee), ''))
            from pgclaim.queue_grants as g),
        (select pg_catalog.pg_sequence_last_value('pgclaim.records_id_seq'::regclass)::text),
        (select pg_catalog.md5(coalesce(pg_catalog.string_agg(
            g::text, ',' order by g.queue, g.group_key), ''))
            from pgclaim.groups as g),
        (select pg_catalog.md5(coalesce(pg_catalog.string_agg(w::text, ',' order by w.id), ''))
            from pgclaim.waiting as w),
        (select pg_catalog.md5(coalesce(pg_catalog.string_agg(s::text, ',' order by s.name), ''))
            from pgclaim.schedules as s)
    );
$fn$;

-- Remembers a value under a name for the rest of the transaction; returns it.
create function pgclaim_test.keep(name text, value anyelement)
returns anyelement
language plpgsql
as $fn$
begin
    perform pg_catalog.set_config('pgclaim_test.' || name, value::text, true);
    return value;
end;
$fn$;

-- The value remembered under name, as text and as an id.
create function pgclaim_test.kept(name text)
returns text
language sql
as $fn$
    select pg_catalog.current_setting('pgclaim_test.' || name);
$fn$;

create function pgclaim_test.id(name text)
returns bigint
language sql
as $fn$
    select pg_catalog.current_setting('pgclaim_test.' || name)::bigint;
$fn$;

-- Two assertions: sql raises errcode, and the database is unchanged afterwards.
create function pgclaim_test.rejects(sql text, errcode text, description text)
returns text
language plpgsql
as $fn$
declare
    v_before text := pgclaim_test.digest();
    v_tap text;
begin
    v_tap := tap.throws_ok(sql, errcode, null, description);
    return tap.collect_tap(
        v_tap,
        tap.is(pgclaim_test.digest(), v_before, description || ': nothing changed')
    );
end;
$fn$;

-- The one row of a record, unfinished or finished (both tables have the same columns).
create function pgclaim_test.rec(record_id bigint)
returns pgclaim.records
language sql
as $fn$
    select r.* from pgclaim.records as r where r.id = record_id
    union all
    select f.* from pgclaim.finished as f where f.id = record_id;
$fn$;

-- Every record, unfinished (pgclaim.records) or finished (pgclaim.finished): the
-- tests read a record's row wherever its state keeps it.
create view pgclaim_test.all_records as
select r.* from pgclaim.records as r
union all
select f.* from pgclaim.finished as f;

-- Whether a record waits behind the head of its FIFO group (in pgclaim.waiting).
create function pgclaim_test.waits(record_id bigint)
returns boolean
language sql
as $fn$
    select exists (select from pgclaim.waiting as w where w.id = record_id);
$fn$;
