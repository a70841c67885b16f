-- retry_failed of a dead-lettered record of a group: it becomes the head when its
-- group has no unfinished record, and otherwise waits behind the group's records
-- as a record enqueued now would.
begin;
select plan(5);

select pgclaim_test.set_now('2030-01-01 00:00:00+00');
select pgclaim.create_queue('gr', max_attempts => 1);
select pgclaim_test.keep('x1', pgclaim.enqueue('gr', '{}', group_key => 'g'));
select pgclaim_test.keep('x2', pgclaim.enqueue('gr', '{}', group_key => 'g'));
select pgclaim.fail('w1', c.id, 'no') from pgclaim.claim_batch('gr', 'w1', 10) as c;

select pgclaim_test.advance('1 minute');
select is(pgclaim.retry_failed('gr'), 1, 'the dead-lettered head is retried');
select results_eq(
    $$
        select r.id, pgclaim_test.waits(r.id) from pgclaim.records as r
        where r.queue = 'gr' order by r.id
    $$,
    $$ values (pgclaim_test.id('x1'), true), (pgclaim_test.id('x2'), false) $$,
    'with the group''s next record already its head, the retried record waits behind it'
);
select pgclaim.complete('w2', array[c.id]) from pgclaim.claim_batch('gr', 'w2', 10) as c;
select results_eq(
    $$ select c.id from pgclaim.claim_batch('gr', 'w2', 10) as c $$,
    $$ values (pgclaim_test.id('x1')) $$,
    'it runs once the records ahead of it finished'
);
select pgclaim.fail('w2', pgclaim_test.id('x1'), 'no again');
select is(pgclaim.retry_failed('gr', array[pgclaim_test.id('x1')]), 1, 'retried again');
select is(
    pgclaim_test.waits(pgclaim_test.id('x1')), false,
    'into an empty group it goes back as the head'
);

select * from finish();
rollback;
