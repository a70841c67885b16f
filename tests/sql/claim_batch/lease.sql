-- claim_batch: the claimed row, the queue's lease by default or the one given,
-- the attempt counted, one random lease_token per call.
begin;
select plan(9);

select pgclaim_test.set_now('2030-01-01 00:00:00+00');
select pgclaim.create_queue('cl', lease => '5 minutes', max_attempts => 3);
select pgclaim_test.keep('a', pgclaim.enqueue('cl', '{"n": 1}', priority => 2));
select pgclaim_test.keep('b', pgclaim.enqueue('cl', '{"n": 2}', priority => 1));
select pgclaim.enqueue_batch('cl', array['{"n": 3}', '{"n": 4}']::jsonb[]);

create temp table c1 on commit drop as
select * from pgclaim.claim_batch('cl', 'w1', 1);

select results_eq(
    $$
        select c.id, c.queue, c.payload, c.attempt, c.max_attempts, c.priority, c.enqueued_at,
            c.run_at, c.lease_until
        from c1 as c
    $$,
    $$
        values (
            pgclaim_test.id('a'), 'cl', '{"n": 1}'::jsonb, 1, 3, 2,
            '2030-01-01 00:00:00+00'::timestamptz, '2030-01-01 00:00:00+00'::timestamptz,
            '2030-01-01 00:05:00+00'::timestamptz
        )
    $$,
    'the claimed row: attempt 1, lease_until now + the queue''s lease'
);
select results_eq(
    $$
        select r.status::text, r.worker_id, r.attempt, r.lease_until, r.lease_token
        from pgclaim.records as r where r.id = pgclaim_test.id('a')
    $$,
    $$
        select 'running', 'w1', 1, '2030-01-01 00:05:00+00'::timestamptz, c.lease_token
        from c1 as c
    $$,
    'the record is running, held by the worker under the returned lease_token'
);

create temp table c2 on commit drop as
select * from pgclaim.claim_batch('cl', 'w2', 1, lease => '30 seconds');
select results_eq(
    $$ select c.id, c.lease_until from c2 as c $$,
    $$ values (pgclaim_test.id('b'), '2030-01-01 00:00:30+00'::timestamptz) $$,
    'a lease given to claim_batch overrides the queue''s'
);
select isnt(
    (select c.lease_token from c2 as c), (select c.lease_token from c1 as c),
    'each claim draws a new lease_token'
);
-- Tokens come from the strong random source, not a sequence: of 500 drawn one
-- after the other none repeats and they do not ascend (a sequence would).
select is(
    (
        select
            pg_catalog.format(
                '%s distinct, ascending: %s',
                pg_catalog.count(distinct t.t),
                pg_catalog.count(*) filter (where t.t > t.prev) = 499
            )
        from (
            select
                x.t,
                pg_catalog.lag(x.t) over (order by x.n) as prev
            from (
                select
                    s.n,
                    pgclaim._lease_token() as t
                from pg_catalog.generate_series(1, 500) as s (n)
            ) as x
        ) as t
    ),
    '500 distinct, ascending: f',
    '500 lease tokens are distinct and not drawn in ascending order'
);

select is(
    (
        select r.lease_for from pgclaim.records as r
        where r.id = pgclaim_test.id('b')
    ),
    '30 seconds'::interval,
    'the record remembers the lease it was claimed with'
);

create temp table c3 on commit drop as
select * from pgclaim.claim_batch('cl', 'w3', 10);
select is(
    (select pg_catalog.count(distinct c.lease_token)::int from c3 as c), 1,
    'the records of one claim share its lease_token'
);
select
    is(
        (select pg_catalog.count(*)::int from c3),
        2,
        'a larger batch hands out the two records left'
    );

select pgclaim_test.advance('6 minutes');
select results_eq(
    $$ select c.id, c.attempt from pgclaim.claim_batch('cl', 'w4', 1) as c $$,
    $$ values (pgclaim_test.id('a'), 2) $$,
    'after its lease expired the record is claimed again with attempt 2'
);

select * from finish();
rollback;
