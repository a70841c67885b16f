-- fail with attempts left puts the record back to pending after the backoff:
-- within [0.5, 1] of least(backoff_max, backoff_base * 2^(attempt - 1)),
-- measured with the frozen clock.
begin;
select plan(5);

select pgclaim_test.set_now('2030-01-01 00:00:00+00');
select pgclaim.create_queue(
    'bo', max_attempts => 10, backoff_base => '10 seconds', backoff_max => '100 seconds'
);
select pgclaim_test.keep('a', pgclaim.enqueue('bo', '{}'));

create temp table delays (attempt int, status text, delay interval) on commit drop;

do $do$
declare
    v_attempt int;
    v_status text;
begin
    for i in 1..6 loop
        select c.attempt into v_attempt from pgclaim.claim_batch('bo', 'w1', 1) as c;
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

select results_eq(
    $$ select d.attempt, d.status from delays as d order by d.attempt $$,
    $$ values (1, 'pending'), (2, 'pending'), (3, 'pending'), (4, 'pending'), (5, 'pending'),
        (6, 'pending') $$,
    'each failed attempt with attempts left returns pending'
);
select results_eq(
    $$
        select d.attempt,
            d.delay >= b.cap / 2 and d.delay <= b.cap as within
        from delays as d
        inner join (
            values (1, '10 seconds'::interval), (2, '20 seconds'), (3, '40 seconds'),
            (4, '80 seconds'), (5, '100 seconds'), (6, '100 seconds')
        ) as b (attempt, cap) on d.attempt = b.attempt
        order by d.attempt
    $$,
    $$ values (1, true), (2, true), (3, true), (4, true), (5, true), (6, true) $$,
    'the delay of attempt n is within [0.5, 1] of least(100 s, 10 s * 2^(n - 1))'
);
select is(
    (
        select r.last_error from pgclaim.records as r
        where r.id = pgclaim_test.id('a')
    ), 'boom 6',
    'the error of the last attempt is kept'
);

-- Many first attempts: every delay within [5 s, 10 s], and jittered. The jitter is
-- seeded, so this file draws the same delays in every run.
select pg_catalog.setseed(0.25);
select pgclaim.create_queue('bo_many', backoff_base => '10 seconds');
select pgclaim.enqueue_batch(
    'bo_many', array(select '{}'::jsonb from pg_catalog.generate_series(1, 200))
);
select pgclaim.fail('w2', c.id, 'boom') from pgclaim.claim_batch('bo_many', 'w2', 200) as c;
select results_eq(
    $$
        select pg_catalog.count(*)::int,
            pg_catalog.bool_and(r.run_at - pgclaim._now() between '5 seconds' and '10 seconds')
        from pgclaim.records as r where r.queue = 'bo_many' and r.status = 'pending'
    $$,
    $$ values (200, true) $$,
    '200 first attempts are all back to pending within [5 s, 10 s]'
);
select cmp_ok(
    (
        select pg_catalog.count(distinct r.run_at)::int from pgclaim.records as r
        where r.queue = 'bo_many'
    ),
    '>', 100,
    'the delays are jittered, not all equal'
);

select * from finish();
rollback;
