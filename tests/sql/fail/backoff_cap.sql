-- Late attempts with a large backoff_base: the delay is capped at backoff_max
-- and fail keeps working (the uncapped base * 2^(attempt - 1) is far beyond
-- what an interval can hold).
begin;
select plan(4);

select pgclaim_test.set_now('2030-01-01 00:00:00+00');
select pgclaim.create_queue(
    'bc', max_attempts => 40, backoff_base => '3 hours', backoff_max => '1 day'
);
select pgclaim_test.keep('a', pgclaim.enqueue('bc', '{}'));

create temp table delays (attempt int, status text, delay interval) on commit drop;

do $do$
declare
    v_attempt int;
    v_status text;
begin
    for i in 1..39 loop
        select c.attempt into v_attempt from pgclaim.claim_batch('bc', 'w1', 1) as c;
        v_status := pgclaim.fail('w1', pgclaim_test.id('a'), 'boom ' || i);
        insert into delays
        select v_attempt, v_status, r.run_at - pgclaim._now()
        from pgclaim.records as r where r.id = pgclaim_test.id('a');
        perform pgclaim_test.set_now(
            (select r.run_at from pgclaim.records as r where r.id = pgclaim_test.id('a'))
        );
    end loop;
end
$do$;

select is(
    (
        select pg_catalog.count(*)::int from delays as d
        where d.status = 'pending'
    ), 39,
    'attempts 1 to 39 of 40 all fail back to pending'
);
select is_empty(
    $$
        select d.attempt from delays as d
        where d.attempt >= 4 and not (d.delay between '12 hours' and '24 hours')
    $$,
    'from attempt 4 on, every delay is within [0.5, 1] of backoff_max'
);
select results_eq(
    $$
        select pgclaim._backoff(b.base, '1 day', b.attempt) between '12 hours' and '24 hours'
        from (
            values ('1 week'::interval, 30), ('2 days', 31), ('1 year', 1000), ('3 hours', 31)
        ) as b (base, attempt)
    $$,
    $$ values (true), (true), (true), (true) $$,
    'a large base or attempt never overflows: the cap applies'
);
select results_eq(
    $$
        select pgclaim._backoff('10 seconds', '1 hour', b.attempt)
            between b.bound / 2 and b.bound
        from (
            values (0, '10 seconds'::interval), (1, '10 seconds'), (2, '20 seconds'),
            (9, '2560 seconds')
        ) as b (attempt, bound)
    $$,
    $$ values (true), (true), (true), (true) $$,
    'small attempts keep the exponential delay'
);

select * from finish();
rollback;
