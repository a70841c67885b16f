-- The array reports take one lease token per id: a null ids array or a
-- lease_tokens array of another length is refused and changes nothing.
begin;
select plan(14);

select pgclaim_test.set_now('2030-01-01 00:00:00+00');
select pgclaim.create_queue('ta');
select pgclaim_test.keep('a', pgclaim.enqueue('ta', '{}'));
select pgclaim_test.keep('b', pgclaim.enqueue('ta', '{}'));
select
    pgclaim_test.keep(
        't', (select max(c.lease_token) from pgclaim.claim_batch('ta', 'w1', 2) as c)
    );

select pgclaim_test.rejects(
    $$ select pgclaim.complete('w1', array[pgclaim_test.id('a'), pgclaim_test.id('b')],
        array[pgclaim_test.id('t')]) $$,
    '22023', 'complete refuses fewer lease tokens than ids'
);
select pgclaim_test.rejects(
    $$ select pgclaim.extend_lease('w1', array[pgclaim_test.id('a')], null,
        array[pgclaim_test.id('t'), pgclaim_test.id('t')]) $$,
    '22023', 'extend_lease refuses more lease tokens than ids'
);
select pgclaim_test.rejects(
    $$ select pgclaim.release('w1', array[pgclaim_test.id('a'), pgclaim_test.id('b')],
        '{}'::bigint[]) $$,
    '22023', 'release refuses an empty lease_tokens array for two ids'
);
select pgclaim_test.rejects(
    $$ select pgclaim.complete('w1', null) $$, '22004', 'complete refuses null ids'
);
select pgclaim_test.rejects(
    $$ select pgclaim.extend_lease('w1', null) $$, '22004', 'extend_lease refuses null ids'
);
select pgclaim_test.rejects(
    $$ select pgclaim.release('w1', null) $$, '22004', 'release refuses null ids'
);
select throws_like(
    $$ select pgclaim.complete('w1', array[1, 2]::bigint[], array[1]::bigint[]) $$,
    '%lease_tokens has 1 elements but ids has 2%',
    'the message names both lengths'
);
select is(
    pgclaim.complete(
        'w1', array[pgclaim_test.id('a'), pgclaim_test.id('b')],
        array[pgclaim_test.id('t'), pgclaim_test.id('t')]
    ),
    2,
    'matching arrays complete both records'
);

select * from finish();
rollback;
