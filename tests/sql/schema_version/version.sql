-- schema_version is an integer, the one health reports.
begin;
select plan(2);

select is(pgclaim.schema_version(), 3, 'the installed schema is version 3');
select is(
    (pgclaim.health(max_xact_age => '100 years') ->> 'schema_version')::int,
    pgclaim.schema_version(),
    'health reports the same version'
);

select * from finish();
rollback;
