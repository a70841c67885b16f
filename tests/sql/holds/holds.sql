-- holds: true only while the claim named by id and lease_token is live (running,
-- that token, lease not expired by the test clock); nulls are refused.
begin;
select plan(13);

select pgclaim_test.set_now('2030-01-01 00:00:00+00');
select pgclaim.create_queue('hd', lease => '1 minute', max_attempts => 3);
select pgclaim_test.keep('a', pgclaim.enqueue('hd', '{}'));
select pgclaim_test.keep('b', pgclaim.enqueue('hd', '{}'));

select is(pgclaim.holds(pgclaim_test.id('a'), 1), false, 'a pending record is held by nobody');
select pgclaim_test.keep('t1', c.lease_token) from pgclaim.claim_batch('hd', 'w1', 1) as c;
select is(
    pgclaim.holds(pgclaim_test.id('a'), pgclaim_test.id('t1')), true,
    'the claim just made holds'
);
select is(
    pgclaim.holds(pgclaim_test.id('a'), pgclaim_test.id('t1') + 1), false,
    'another token does not'
);
select is(
    pgclaim.holds(pgclaim_test.id('b'), pgclaim_test.id('t1')), false,
    'the token of another record does not'
);
select is(pgclaim.holds(-1, pgclaim_test.id('t1')), false, 'an unknown id does not');

select pgclaim_test.advance('59 seconds');
select is(
    pgclaim.holds(pgclaim_test.id('a'), pgclaim_test.id('t1')), true,
    'still held just before the lease ends'
);
select pgclaim_test.advance('1 second');
select is(
    pgclaim.holds(pgclaim_test.id('a'), pgclaim_test.id('t1')), false,
    'not once the lease has ended, even before anybody takes it back'
);

select pgclaim_test.advance('1 second');
select pgclaim_test.keep('t2', c.lease_token) from pgclaim.claim_batch('hd', 'w2', 1) as c;
select is(
    array[
        pgclaim.holds(pgclaim_test.id('a'), pgclaim_test.id('t1')),
        pgclaim.holds(pgclaim_test.id('a'), pgclaim_test.id('t2'))
    ],
    array[false, true],
    'after the record was claimed again only the new claim holds'
);
select pgclaim.complete('w2', array[pgclaim_test.id('a')], array[pgclaim_test.id('t2')]);
select is(
    pgclaim.holds(pgclaim_test.id('a'), pgclaim_test.id('t2')), false,
    'a completed record is held by nobody'
);

select pgclaim_test.rejects(
    $$ select pgclaim.holds(null, 1) $$, '22004', 'a null id is refused'
);
select pgclaim_test.rejects(
    $$ select pgclaim.holds(1, null) $$, '22004', 'a null lease_token is refused'
);

select * from finish();
rollback;
