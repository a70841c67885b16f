-- Enqueue wakes the workers unless the queue's head has waited 100 ms (a backlog
-- the workers are draining): _wake says whether it notified.
begin;
select plan(5);

select pgclaim_test.set_now('2030-01-01 00:00:00+00');
select pgclaim.create_queue('wk');

select ok(
    pgclaim._wake('wk', pgclaim._now()), 'an empty queue: the workers are woken'
);
select pgclaim.enqueue('wk', '{}');
select ok(
    pgclaim._wake('wk', pgclaim._now()), 'a head that has just arrived: woken'
);
select pgclaim_test.advance('50 milliseconds');
select ok(
    pgclaim._wake('wk', pgclaim._now()), 'a head 50 ms old: still woken'
);
select pgclaim_test.advance('100 milliseconds');
select ok(
    not pgclaim._wake('wk', pgclaim._now()), 'a head 150 ms old (a backlog): no notification'
);
select pgclaim.claim_batch('wk', 'w1');
select ok(
    pgclaim._wake('wk', pgclaim._now()), 'the backlog claimed: woken again'
);

select * from finish();
rollback;
