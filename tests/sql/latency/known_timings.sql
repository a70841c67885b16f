-- latency: wait (enqueue to first claim) and run (last claim to finish) times of
-- the records that finished in the window, against timings set with the test
-- clock. Record i (1..6) is enqueued at T0, due at T0 + 10i s, claimed then, and
-- finishes i seconds later; record 5 fails once and is claimed again at T0 + 60 s,
-- record 6 is dead-lettered, record 7 is cancelled (left out).
begin;
select plan(16);

select pgclaim_test.set_now('2030-01-01 00:00:00+00');
select pgclaim.create_queue('lt', max_attempts => 3);
select pgclaim.create_queue('lt_quiet');
select
    pgclaim_test.keep(
        'r' || i, pgclaim.enqueue(
            'lt', '{}', run_at => '2030-01-01 00:00:00+00'::timestamptz
            + pg_catalog.make_interval(secs => 10 * i)
        )
    )
from pg_catalog.generate_series(1, 7) as i;

create function pg_temp.step(at_s integer) returns timestamptz language sql as $$
    select pgclaim_test.set_now(
        '2030-01-01 00:00:00+00'::timestamptz + pg_catalog.make_interval(secs => at_s));
$$;
do $$
begin
    for i in 1..4 loop
        perform pg_temp.step(10 * i);
        perform pgclaim.claim_batch('lt', 'w', 1);
        perform pg_temp.step(10 * i + i);
        perform pgclaim.complete('w', array[pgclaim_test.id('r' || i)]);
    end loop;
    perform pg_temp.step(50);
    perform pgclaim.claim_batch('lt', 'w', 1);
    perform pg_temp.step(51);
    perform pgclaim.fail('w', pgclaim_test.id('r5'), 'once', retry_after => '9 seconds');
    perform pg_temp.step(60);
    perform pgclaim.claim_batch('lt', 'w', 1);
    perform pg_temp.step(65);
    perform pgclaim.complete('w', array[pgclaim_test.id('r5')]);
    perform pg_temp.step(70);
    perform pgclaim.claim_batch('lt', 'w', 1);
    perform pg_temp.step(76);
    perform pgclaim.fail('w', pgclaim_test.id('r6'), 'fatal', fatal => true);
    perform pg_temp.step(80);
    perform pgclaim.claim_batch('lt', 'w', 1);
    perform pg_temp.step(81);
    perform pgclaim.cancel(array[pgclaim_test.id('r7')]);
end
$$;
select pg_temp.step(100);

select results_eq(
    $$
        select l.measure, l.records, l.p50, l.p95, l.p99, l.max, l.sum_seconds
        from pgclaim.latency('lt') as l
    $$,
    $$
        values
        ('wait', 6::bigint, '30 s'::interval, '70 s'::interval, '70 s'::interval,
            '70 s'::interval, 220::double precision),
        ('run', 6::bigint, '3 s'::interval, '6 s'::interval, '6 s'::interval,
            '6 s'::interval, 21::double precision)
    $$,
    'percentiles, max and sum over the completed and dead-lettered records, not the cancelled'
);
select results_eq(
    $$
        select b.le, b.n
        from pgclaim.latency('lt') as l,
            rows from (
                pg_catalog.unnest(l.bucket_le), pg_catalog.unnest(l.bucket_count)
            ) as b (le, n)
        where l.measure = 'wait' and b.le in (5, 10, 30, 60, 120, 'Infinity')
    $$,
    $$
        values (5::double precision, 0::bigint), (10, 1), (30, 3), (60, 5), (120, 6),
        ('Infinity', 6)
    $$,
    'wait buckets are cumulative and include their bound'
);
select results_eq(
    $$
        select b.le, b.n
        from pgclaim.latency('lt') as l,
            rows from (
                pg_catalog.unnest(l.bucket_le), pg_catalog.unnest(l.bucket_count)
            ) as b (le, n)
        where l.measure = 'run' and b.le in (0.5, 1, 2.5, 5, 10, 'Infinity')
    $$,
    $$
        values (0.5::double precision, 0::bigint), (1, 1), (2.5, 2), (5, 5), (10, 6),
        ('Infinity', 6)
    $$,
    'run buckets are cumulative and include their bound'
);
select is(
    (
        select pg_catalog.array_agg(l.bucket_le = '{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
            2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, Infinity}'::double precision[])
        from pgclaim.latency('lt') as l
    ),
    array[true, true],
    'both rows carry the same bounds, the last Infinity'
);
select is(
    (
        select pg_catalog.array_agg(l.records order by l.measure)
        from pgclaim.latency('lt', since => '30 seconds') as l
    ),
    array[1::bigint, 1],
    'a shorter window counts only the records finished in it (the dead letter at T0 + 76 s)'
);
select results_eq(
    $$ select l.max from pgclaim.latency('lt', since => '30 seconds') as l $$,
    $$ values ('70 s'::interval), ('6 s'::interval) $$,
    'with their own times'
);
select results_eq(
    $$
        select l.measure, l.records, l.p50, l.max, l.sum_seconds,
            l.bucket_count[pg_catalog.cardinality(l.bucket_count)]
        from pgclaim.latency('lt_quiet') as l
    $$,
    $$
        values ('wait', 0::bigint, null::interval, null::interval, 0::double precision, 0::bigint),
        ('run', 0::bigint, null::interval, null::interval, 0::double precision, 0::bigint)
    $$,
    'a queue with nothing finished gives both rows, empty'
);
select pg_temp.step(1000);
select is(
    (select pg_catalog.sum(l.records)::integer from pgclaim.latency('lt') as l), 0,
    'records finished before the window are left out'
);

select pgclaim_test.rejects(
    $$ select * from pgclaim.latency('nope') $$, 'PC001', 'an unknown queue is refused'
);
select pgclaim_test.rejects(
    $$ select * from pgclaim.latency('lt', null) $$, '22004', 'a null since is refused'
);
select pgclaim_test.rejects(
    $$ select * from pgclaim.latency('lt', '-1 minute') $$, '22023',
    'a negative since is refused'
);
select pgclaim_test.rejects(
    $$ select * from pgclaim.latency('lt', '0') $$, '22023', 'a zero since is refused'
);

select * from finish();
rollback;
