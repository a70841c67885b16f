-- complete: only records the worker holds now are completed; the rest of the
-- ids are skipped and counted out.
begin;
select plan(13);

select pgclaim_test.set_now('2030-01-01 00:00:00+00');
select pgclaim.create_queue('cp');
select pgclaim_test.keep('a', pgclaim.enqueue('cp', '{}', priority => 3));
select pgclaim_test.keep('b', pgclaim.enqueue('cp', '{}', priority => 2));
select pgclaim_test.keep('c', pgclaim.enqueue('cp', '{}', priority => 1));
select pgclaim.claim_batch('cp', 'w1', 2);
select pgclaim_test.advance('10 seconds');

select is(
    pgclaim.complete(
        'w1', array[pgclaim_test.id('a'), pgclaim_test.id('b'), pgclaim_test.id('c'), -1]
    ),
    2,
    'complete counts the held records only (a pending and an unknown id are skipped)'
);
select results_eq(
    $$
        select r.status::text, r.finished_at, r.lease_until from pgclaim_test.all_records as r
        where r.id in (pgclaim_test.id('a'), pgclaim_test.id('b')) order by r.id
    $$,
    $$
        values ('completed', '2030-01-01 00:00:10+00'::timestamptz, null::timestamptz),
        ('completed', '2030-01-01 00:00:10+00'::timestamptz, null::timestamptz)
    $$,
    'the held records are completed at the frozen now'
);
select is(pgclaim_test.status(pgclaim_test.id('c')), 'pending', 'the pending record is untouched');
select is(
    pgclaim.complete('w1', array[pgclaim_test.id('a')]), 0, 'completing twice changes nothing'
);

select pgclaim_test.keep(
    'token', (select c.lease_token from pgclaim.claim_batch('cp', 'w1', 1) as c)
);
select is(
    pgclaim.complete('w2', array[pgclaim_test.id('c')]), 0,
    'another worker completes nothing'
);
select is(pgclaim_test.status(pgclaim_test.id('c')), 'running', 'the record stays running');
select is(
    pgclaim.complete('w1', array[pgclaim_test.id('c')], array[pgclaim_test.id('token') + 1]),
    0,
    'a wrong lease_token completes nothing'
);
select is(
    pgclaim.complete('w1', array[pgclaim_test.id('c')], array[pgclaim_test.id('token')]),
    1,
    'the holder with its lease_token completes the record'
);
select is(pgclaim.complete('w1', '{}'), 0, 'an empty array completes nothing');

select pgclaim_test.rejects(
    $$ select pgclaim.complete(null, array[1::bigint]) $$, '22004', 'a null worker_id'
);
select pgclaim_test.rejects(
    $$ select pgclaim.complete('', array[1::bigint]) $$, '22023', 'an empty worker_id'
);

select * from finish();
rollback;
