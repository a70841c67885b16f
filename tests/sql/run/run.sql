-- run: records handled by an SQL procedure inside the database, each in its own
-- subtransaction: a handler that returns completes its record with its effects,
-- one that raises leaves no effect and fails its record (retries, backoff, dead
-- letter, the error text kept); limits, the time budget, and a rolled-back run.
begin;
select plan(25);

select pgclaim_test.set_now('2030-01-01 00:00:00+00');
select pgclaim.create_queue('rn', max_attempts => 2, backoff_base => '1 minute');
create schema app;
create table app.out (n integer primary key, attempt integer);
create procedure app.handle(r pgclaim.claimed)
language plpgsql
as $$
begin
    insert into app.out values (((r).payload ->> 'n')::integer, (r).attempt);
    if ((r).payload ->> 'n')::integer = 3 then
        raise exception 'n=3 refused';
    end if;
end;
$$;
select pgclaim_test.keep('r' || i, pgclaim.enqueue('rn', pg_catalog.jsonb_build_object('n', i)))
from pg_catalog.generate_series(1, 4) as i;

select results_eq(
    $$
        select r.id, r.status, r.error
        from pgclaim.run('rn', 'app.handle(pgclaim.claimed)', 10, '1 minute') as r
        order by r.id
    $$,
    $$
        values
        (pgclaim_test.id('r1'), 'completed', null::text),
        (pgclaim_test.id('r2'), 'completed', null),
        (pgclaim_test.id('r3'), 'pending', 'P0001: n=3 refused'),
        (pgclaim_test.id('r4'), 'completed', null)
    $$,
    'each record is completed, or failed with the SQLSTATE and message of its error'
);
select results_eq(
    $$ select o.n, o.attempt from app.out as o order by o.n $$,
    $$ values (1, 1), (2, 1), (4, 1) $$,
    'the effects of the handlers that returned are kept, those of the one that raised are not'
);
select results_eq(
    $$
        select pgclaim_test.status(i.id), r.attempt, r.last_error
        from (
            select pgclaim_test.id('r' || n) as id from pg_catalog.generate_series(1, 4) as n
        ) as i
        inner join pgclaim_test.all_records as r on i.id = r.id
        order by i.id
    $$,
    $$
        values
        ('completed', 1, null::text), ('completed', 1, null), ('pending', 1, 'P0001: n=3 refused'),
        ('completed', 1, null)
    $$,
    'completed records are finished; the failed one waits for its retry with its error'
);
select is(
    (
        select pg_catalog.count(*)::integer
        from pgclaim.run('rn', 'app.handle(pgclaim.claimed)', 10, '1 minute')
    ),
    0, 'nothing is due during the backoff: a run handles nothing'
);
select pgclaim_test.advance('2 minutes');
select results_eq(
    $$
        select r.id, r.status
        from pgclaim.run('rn', 'app.handle(pgclaim.claimed)', 10, '1 minute') as r
    $$,
    $$ values (pgclaim_test.id('r3'), 'failed') $$,
    'on its last attempt it is dead-lettered'
);
select is(pgclaim_test.status(pgclaim_test.id('r3')), 'failed', 'it is a dead letter');

-- max_records
select pgclaim_test.keep('r' || i, pgclaim.enqueue('rn', pg_catalog.jsonb_build_object('n', i)))
from pg_catalog.generate_series(10, 14) as i;
select is(
    (
        select pg_catalog.count(*)::integer
        from pgclaim.run('rn', 'app.handle(pgclaim.claimed)', 2, '1 minute')
    ),
    2, 'a run handles at most max_records records'
);
select is(
    (
        select pg_catalog.count(*)::integer from pgclaim.records as r
        where r.queue = 'rn'
    ),
    3, 'the others stay pending'
);

-- A rolled-back run leaves everything as it was.
select pgclaim_test.keep('before', pgclaim_test.digest());
create function pg_temp.run_rolled_back() returns integer
language plpgsql as $$
declare
    v_n integer;
begin
    select pg_catalog.count(*) into v_n
    from pgclaim.run('rn', 'app.handle(pgclaim.claimed)', 10, '1 minute');
    raise exception using errcode = 'XX999', message = 'undo', detail = v_n::text;
exception when sqlstate 'XX999' then
    return v_n;
end;
$$;
select is(pg_temp.run_rolled_back(), 3, 'a run that handles three records is rolled back');
select is(pgclaim_test.digest(), pgclaim_test.kept('before'), 'a run rolled back changes nothing');
select is(
    (select pg_catalog.count(*)::integer from app.out), 5, 'and leaves no effect'
);

-- The time budget: this handler moves the test clock a minute forward.
create procedure app.slow(r pgclaim.claimed)
language plpgsql
as $$
begin
    insert into app.out values (((r).payload ->> 'n')::integer, (r).attempt);
    perform pgclaim_test.advance('1 minute');
end;
$$;
select is(
    (
        select pg_catalog.count(*)::integer
        from pgclaim.run('rn', 'app.slow(pgclaim.claimed)', 10, '30 seconds')
    ),
    1, 'once the time budget has passed no further record is begun'
);
select results_eq(
    $$
        select r.status::text, r.attempt, r.worker_id from pgclaim.records as r
        where r.queue = 'rn' order by r.id
    $$,
    $$ values ('pending', 0, null::text), ('pending', 0, null) $$,
    'the records of the batch not begun go back, their attempt not counted'
);

-- Bad input
create function app.not_a_procedure(r pgclaim.claimed) returns void
language sql as 'select null';
create procedure app.wrong_type(r jsonb) language sql as 'select null';
select pgclaim_test.rejects(
    $$ select * from pgclaim.run('rn', 'app.not_a_procedure(pgclaim.claimed)') $$, '22023',
    'a function is refused as handler'
);
select pgclaim_test.rejects(
    $$ select * from pgclaim.run('rn', 'app.wrong_type(jsonb)') $$, '22023',
    'a procedure taking another type is refused'
);
select pgclaim_test.rejects(
    $$ select * from pgclaim.run('rn', null) $$, '22004', 'a null handler is refused'
);
select pgclaim_test.rejects(
    $$ select * from pgclaim.run('rn', 'app.handle(pgclaim.claimed)', 0) $$, '22023',
    'max_records 0 is refused'
);
select pgclaim_test.rejects(
    $$ select * from pgclaim.run('rn', 'app.handle(pgclaim.claimed)', 10, '0') $$, '22023',
    'a time_budget of 0 is refused'
);
select pgclaim_test.rejects(
    $$ select * from pgclaim.run('nope', 'app.handle(pgclaim.claimed)') $$, 'PC001',
    'an unknown queue is refused'
);

select * from finish();
rollback;
