-- fail_batch: many failed attempts in one call, each as fail would report it;
-- records the worker does not hold are skipped.
begin;
select plan(15);

select pgclaim_test.set_now('2030-01-01 00:00:00+00');
select pgclaim.create_queue('fb', max_attempts => 2, backoff_base => '10 seconds');
select pgclaim.enqueue_batch('fb', array['{}', '{}', '{}', '{}', '{}']::jsonb[]);
create temp table c on commit drop as
select * from pgclaim.claim_batch('fb', 'w1', 4);
select pgclaim.configure(max_error_bytes => 64);

select results_eq(
    $$
        select b.id, b.status from pgclaim.fail_batch(
            'w1',
            array(select c.id from c order by c.id) || array[-1::bigint],
            array['boom', 'again', 'fatal', pg_catalog.repeat('é', 200), 'unknown'],
            array(select c.lease_token from c order by c.id) || array[0::bigint],
            array[null, '30 seconds', null, null, null]::interval [],
            array[false, false, true, false, false]
        ) as b
    $$,
    $$
        select c.id, case when c.rn = 3 then 'failed' else 'pending' end
        from (select c.id, pg_catalog.row_number() over (order by c.id) as rn from c) as c
        order by c.id
    $$,
    'every held record is reported (fatal dead-lettered), the unknown id skipped'
);
select ok(
    (
        select r.run_at from pgclaim.records as r
        where r.id = (select min(c.id) from c)
    )
    between '2030-01-01 00:00:05+00' and '2030-01-01 00:00:10+00',
    'a backoff of 10 s with equal jitter: between 5 and 10 s'
);
select is(
    (
        select r.run_at from pgclaim.records as r
        where r.id = (
            select c.id from c
            order by c.id limit 1 offset 1
        )
    ),
    '2030-01-01 00:00:30+00'::timestamptz, 'the second waits its retry_after'
);
select is(
    (
        select r.last_error from pgclaim.records as r
        where r.id = (select min(c.id) from c)
    ),
    'boom', 'the error text is kept'
);
select ok(
    (
        select pg_catalog.octet_length(r.last_error) <= 64 and r.last_error ~ 'cut: 400 bytes'
        from pgclaim.records as r
        where r.id = (
            select c.id from c
            order by c.id limit 1 offset 3
        )
    ),
    'an error text over max_error_bytes is cut there, with a note of its size'
);
select is(
    (
        select r.worker_id from pgclaim.records as r
        where r.id = (select min(c.id) from c)
    ),
    null, 'the lease is cleared'
);
select is(
    (
        select pg_catalog.count(*)::int
        from pgclaim.fail_batch('w1', array(select c.id from c), array(select 'x' from c))
    ),
    0, 'reporting again changes nothing: none is held any more'
);

select pgclaim_test.rejects(
    $$ select * from pgclaim.fail_batch('w1', array[1::bigint, 2], array['x']) $$, '22023',
    'errors of another length than ids'
);
select pgclaim_test.rejects(
    $$
        select * from pgclaim.fail_batch(
            'w1', array[1::bigint], array['x'], retry_after => array['-1 second']::interval []
        )
    $$,
    '22023', 'a negative retry_after'
);
select pgclaim_test.rejects(
    $$ select * from pgclaim.fail_batch('w1', array[1::bigint, null], array['x', 'y']) $$, '22004',
    'a null id'
);
select pgclaim_test.rejects(
    $$ select * from pgclaim.fail_batch(null, array[1::bigint], array['x']) $$, '22004',
    'a null worker_id'
);

select * from finish();
rollback;
