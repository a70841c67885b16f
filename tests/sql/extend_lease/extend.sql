-- extend_lease: the holder's lease runs again from now, for the length it was
-- claimed with or the one given; nobody else's report extends it.
begin;
select plan(17);

select pgclaim_test.set_now('2030-01-01 00:00:00+00');
select pgclaim.create_queue('el', lease => '1 minute');
select pgclaim_test.keep('a', pgclaim.enqueue('el', '{}', priority => 1));
select pgclaim_test.keep('p', pgclaim.enqueue('el', '{}'));
select pgclaim_test.keep(
    'token',
    (select c.lease_token from pgclaim.claim_batch('el', 'w1', 1, lease => '2 minutes') as c)
);
select pgclaim_test.advance('1 minute');

select is(
    pgclaim.extend_lease('w1', array[pgclaim_test.id('a')]), 1,
    'the holder extends its lease'
);
select is(
    (
        select r.lease_until from pgclaim.records as r
        where r.id = pgclaim_test.id('a')
    ),
    '2030-01-01 00:03:00+00'::timestamptz,
    'by default the lease runs again for the length it was claimed with (2 minutes)'
);
select is(
    pgclaim.extend_lease('w1', array[pgclaim_test.id('a')], lease => '10 minutes'), 1,
    'a lease may be given'
);
select is(
    (
        select r.lease_until from pgclaim.records as r
        where r.id = pgclaim_test.id('a')
    ),
    '2030-01-01 00:11:00+00'::timestamptz,
    'the given lease runs from now'
);
select
    is(
        pgclaim.extend_lease('w2', array[pgclaim_test.id('a')]), 0, 'another worker extends nothing'
    );
select is(
    (
        select r.lease_until from pgclaim.records as r
        where r.id = pgclaim_test.id('a')
    ),
    '2030-01-01 00:11:00+00'::timestamptz,
    'the lease is unchanged by the other worker'
);
select is(
    pgclaim.extend_lease(
        'w1', array[pgclaim_test.id('a')], null, array[pgclaim_test.id('token') - 1]
    ),
    0,
    'a wrong lease_token extends nothing'
);
select is(
    pgclaim.extend_lease('w1', array[pgclaim_test.id('a')], null, array[pgclaim_test.id('token')]),
    1,
    'the right lease_token extends the lease'
);
select is(
    pgclaim.extend_lease('w1', array[pgclaim_test.id('p')]), 0, 'a pending record is not extended'
);

select pgclaim_test.rejects(
    format(
        $$ select pgclaim.extend_lease('w1', array[%s::bigint], '0 seconds') $$,
        pgclaim_test.id('a')
    ),
    '22023', 'a zero lease'
);
select pgclaim_test.rejects(
    format(
        $$ select pgclaim.extend_lease('w1', array[%s::bigint], '-1 minute') $$,
        pgclaim_test.id('a')
    ),
    '22023', 'a negative lease'
);
select pgclaim_test.rejects(
    format($$ select pgclaim.extend_lease(null, array[%s::bigint]) $$, pgclaim_test.id('a')),
    '22004', 'a null worker_id'
);
select pgclaim_test.rejects(
    format($$ select pgclaim.extend_lease('', array[%s::bigint]) $$, pgclaim_test.id('a')),
    '22023', 'an empty worker_id'
);

select * from finish();
rollback;
