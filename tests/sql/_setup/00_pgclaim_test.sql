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
        'language sql volatile set search_path = '''' as %L',
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

-- The status of a record.
create function pgclaim_test.status(record_id bigint)
returns text
language sql
as $fn$
    select r.status::text from pgclaim.records as r where r.id = record_id;
$fn$;

-- A digest of the whole records table, to prove that a failed call changed nothing.
create function pgclaim_test.digest()
returns text
language sql
as $fn$
    select coalesce(pg_catalog.md5(pg_catalog.string_agg(r::text, ',' order by r.id)), '')
        || '/' || (select pg_catalog.count(*) from pgclaim.queues)::text
        || '/' || (select pg_catalog.count(*) from pgclaim.workers)::text
    from pgclaim.records as r;
$fn$;
