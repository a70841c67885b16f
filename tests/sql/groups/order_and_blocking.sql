-- Records of a FIFO group run one at a time in (priority desc, run_at, id)
-- order: only the group's head is claimable, the others wait blocked; the head
-- finishing (complete, dead letter, cancel) unblocks the next, a head waiting for
-- its retry keeps holding the group, and a batch takes the heads of many groups.
begin;
select plan(18);

select pgclaim_test.set_now('2030-01-01 00:00:00+00');
select pgclaim.create_queue('gq', max_attempts => 2);
select pgclaim_test.keep('a1', pgclaim.enqueue('gq', '{"n": "a1"}', group_key => 'a'));
select pgclaim_test.keep('b1', pgclaim.enqueue('gq', '{"n": "b1"}', group_key => 'b'));
select pgclaim_test.keep('a2', pgclaim.enqueue('gq', '{"n": "a2"}', group_key => 'a'));
select pgclaim_test.keep('u1', pgclaim.enqueue('gq', '{"n": "u1"}'));
select pgclaim_test.keep('a3', pgclaim.enqueue('gq', '{"n": "a3"}', group_key => 'a'));
-- Higher priority goes first within the group, but never ahead of the head.
select pgclaim_test.keep(
    'a4', pgclaim.enqueue('gq', '{"n": "a4"}', priority => 5, group_key => 'a')
);

select results_eq(
    $$
        select r.id, pgclaim_test.waits(r.id) from pgclaim.records as r
        where r.queue = 'gq' order by r.id
    $$,
    $$ values (pgclaim_test.id('a1'), false), (pgclaim_test.id('b1'), false),
              (pgclaim_test.id('a2'), true), (pgclaim_test.id('u1'), false),
              (pgclaim_test.id('a3'), true), (pgclaim_test.id('a4'), true) $$,
    'the first record of each group is its head, the later ones wait blocked'
);
select is(
    (
        select pg_catalog.count(*)::int from pgclaim.records as r
        where r.queue = 'gq' and r.priority = -2147483648 and r.run_at = 'infinity'
    ),
    3, 'waiting records sit past the end of the claim''s index range'
);
select results_eq(
    $$ select q.pending, q.blocked from pgclaim.queue_stats as q where q.queue = 'gq' $$,
    $$ values (3::bigint, 3::bigint) $$,
    'queue_stats counts the heads and ungrouped records as pending, the rest as blocked'
);
select results_eq(
    $$ select c.id from pgclaim.claim_batch('gq', 'w1', 10) as c order by c.id $$,
    $$ values (pgclaim_test.id('a1')), (pgclaim_test.id('b1')), (pgclaim_test.id('u1')) $$,
    'one claim takes the head of every group and the ungrouped records, nothing blocked'
);
select is_empty(
    $$ select c.id from pgclaim.claim_batch('gq', 'w2', 10) as c $$,
    'while the heads run, nothing else of their groups is handed out'
);

select pgclaim.complete(
    'w1', array[pgclaim_test.id('a1'), pgclaim_test.id('b1'), pgclaim_test.id('u1')]
);
select results_eq(
    $$ select c.id, c.priority from pgclaim.claim_batch('gq', 'w2', 10) as c $$,
    $$ values (pgclaim_test.id('a4'), 5) $$,
    'completing the head unblocks the next record of its group, by priority first, with it'
);

-- A failed head waiting for its retry holds its group.
select is(
    pgclaim.fail('w2', pgclaim_test.id('a4'), 'boom', retry_after => '1 minute'), 'pending',
    'the head fails with an attempt left'
);
select is_empty(
    $$ select c.id from pgclaim.claim_batch('gq', 'w2', 10) as c $$,
    'a head waiting for its retry keeps its group blocked'
);
select pgclaim_test.advance('2 minutes');
select results_eq(
    $$ select c.id, c.attempt from pgclaim.claim_batch('gq', 'w2', 10) as c $$,
    $$ values (pgclaim_test.id('a4'), 2) $$,
    'once due, the same head is handed out again'
);

-- Dead-lettering the head hands the group on.
select is(pgclaim.fail('w2', pgclaim_test.id('a4'), 'boom'), 'failed', 'out of attempts: failed');
select results_eq(
    $$ select c.id from pgclaim.claim_batch('gq', 'w2', 10) as c $$,
    $$ values (pgclaim_test.id('a2')) $$,
    'a dead-lettered head unblocks the next record of its group'
);

-- Cancelling a blocked record changes nothing else; cancelling the head unblocks the next.
select is(pgclaim.cancel(array[pgclaim_test.id('a3')]), 1, 'a blocked record can be cancelled');
select is(
    pgclaim_test.waits(pgclaim_test.id('a2')), false,
    'the running head is still the head'
);
select pgclaim_test.keep('a5', pgclaim.enqueue('gq', '{"n": "a5"}', group_key => 'a'));
select is(pgclaim.cancel(array[pgclaim_test.id('a2')]), 1, 'the running head is cancelled');
select results_eq(
    $$ select c.id from pgclaim.claim_batch('gq', 'w3', 10) as c $$,
    $$ values (pgclaim_test.id('a5')) $$,
    'cancelling the head unblocks the next'
);

-- A lease that expires leaves the record the head of its group.
select pgclaim_test.keep('a6', pgclaim.enqueue('gq', '{"n": "a6"}', group_key => 'a'));
select pgclaim_test.advance('1 hour');
select results_eq(
    $$ select c.id from pgclaim.claim_batch('gq', 'w4', 10) as c $$,
    $$ values (pgclaim_test.id('a5')) $$,
    'a head whose lease expired is taken back and handed out again, still alone'
);

-- The last record of a group finishing leaves the group empty: the next is a head at once.
select pgclaim.complete('w4', array[pgclaim_test.id('a5')]);
select pgclaim.complete('w4', array[c.id]) from pgclaim.claim_batch('gq', 'w4', 10) as c;
select pgclaim_test.keep('a7', pgclaim.enqueue('gq', '{"n": "a7"}', group_key => 'a'));
select is(
    pgclaim_test.waits(pgclaim_test.id('a7')), false,
    'a record enqueued into an empty group is its head'
);
select is(
    (
        select pg_catalog.count(*)::int from pgclaim.records as r
        where r.queue = 'gq'
    ), 1,
    'and nothing else of the queue is left'
);

select * from finish();
rollback;
