-- create_queue is idempotent: a second call leaves the existing settings alone.
begin;
select plan(3);

select pgclaim.create_queue('cq_idem', lease => '1 minute', max_attempts => 3);

select lives_ok(
    $$ select pgclaim.create_queue('cq_idem', lease => '2 minutes', max_attempts => 9) $$,
    'creating an existing queue again succeeds'
);

select results_eq(
    $$ select q.lease, q.max_attempts from pgclaim.queues as q where q.queue = 'cq_idem' $$,
    $$ values ('1 minute'::interval, 3) $$,
    'the existing queue keeps its first settings'
);

select is(
    (
        select pg_catalog.count(*)::int from pgclaim.queues as q
        where q.queue = 'cq_idem'
    ),
    1,
    'there is still exactly one row for the queue'
);

select * from finish();
rollback;
