-- A paused queue hands out nothing but still accepts records; resuming hands
-- them all out again.
begin;
select plan(10);

select pgclaim.create_queue('pq');
select pgclaim.enqueue('pq', '{"n": 1}');
select pgclaim.enqueue('pq', '{"n": 2}');

select lives_ok($$ select pgclaim.pause_queue('pq') $$, 'pause_queue succeeds');
select ok(
    (
        select q.paused from pgclaim.queues as q
        where q.queue = 'pq'
    ), 'the queue is marked paused'
);
select is_empty(
    $$ select * from pgclaim.claim_batch('pq', 'w1') $$, 'a paused queue hands out nothing'
);
select isnt(pgclaim.enqueue('pq', '{"n": 3}'), null, 'a paused queue still accepts records');
select is(
    (
        select pg_catalog.count(*)::int from pgclaim.records as r
        where r.queue = 'pq' and r.status = 'pending'
    ),
    3,
    'every record is still pending'
);
select lives_ok($$ select pgclaim.pause_queue('pq') $$, 'pausing a paused queue is harmless');

select pgclaim.resume_queue('pq');
select ok(
    not (
        select q.paused from pgclaim.queues as q
        where q.queue = 'pq'
    ),
    'resume_queue clears the mark'
);
select is(
    (select pg_catalog.count(*)::int from pgclaim.claim_batch('pq', 'w1')),
    3,
    'a resumed queue hands out every due record'
);

select pgclaim_test.rejects(
    $$ select pgclaim.pause_queue('pq_missing') $$, 'PC001', 'pausing an unknown queue'
);

select * from finish();
rollback;
