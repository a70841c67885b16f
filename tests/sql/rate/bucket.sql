-- rate and burst: a token bucket that starts full (burst tokens), refills at rate
-- per second up to burst, and that every claim draws from; a claim that takes
-- fewer records than allowed gives the rest back.
begin;
select plan(7);

select pgclaim_test.set_now('2030-01-01 00:00:00+00');
select pgclaim.create_queue('rt', rate => 2, burst => 5);
select pgclaim.enqueue_batch('rt', array_fill('{}'::jsonb, array[40]));

select is(
    (select pg_catalog.count(*)::int from pgclaim.claim_batch('rt', 'w1', 100)), 5,
    'a full bucket hands out burst records at once'
);
select is_empty($$ select from pgclaim.claim_batch('rt', 'w1', 100) $$, 'then nothing');
select pgclaim_test.advance('1.75 seconds');
select is(
    (select pg_catalog.count(*)::int from pgclaim.claim_batch('rt', 'w1', 100)), 3,
    '1.75 s at 2 per second: 3.5 tokens, 3 whole'
);
select pgclaim_test.advance('0.25 seconds');
select is(
    (select pg_catalog.count(*)::int from pgclaim.claim_batch('rt', 'w1', 100)), 1,
    'the half token left and 0.25 s make one more'
);
select pgclaim_test.advance('1 hour');
select is(
    (select pg_catalog.count(*)::int from pgclaim.claim_batch('rt', 'w1', 100)), 5,
    'refilling stops at burst'
);
-- A claim of an empty queue gives its allowance back.
select pgclaim.create_queue('rt_empty', rate => 1, burst => 3);
select pgclaim.claim_batch('rt_empty', 'w1', 10);
select pgclaim.enqueue_batch('rt_empty', array_fill('{}'::jsonb, array[5]));
select is(
    (select pg_catalog.count(*)::int from pgclaim.claim_batch('rt_empty', 'w1', 10)), 3,
    'an empty claim used no token'
);
select pgclaim.alter_queue('rt_empty', rate => 0);
select is(
    (select pg_catalog.count(*)::int from pgclaim.claim_batch('rt_empty', 'w1', 10)), 2,
    'rate 0 removes the limit'
);

select * from finish();
rollback;
