-- enqueue: the record as stored, priority and max_attempts overrides, and a
-- run_at in the future that is not claimable until due.
begin;
select plan(6);

select pgclaim_test.set_now('2030-01-01 00:00:00+00');
select pgclaim.create_queue('eq', max_attempts => 4);
select pgclaim.create_queue('eq_future');

select pgclaim_test.keep('a', pgclaim.enqueue('eq', '{"n": 1}'));
select results_eq(
    $$
        select r.queue, r.status::text, r.priority, r.run_at, r.enqueued_at, r.payload,
            r.attempt, r.max_attempts, r.dedup_key, r.worker_id
        from pgclaim.records as r where r.id = pgclaim_test.id('a')
    $$,
    $$
        values (
            'eq', 'pending', 0, '2030-01-01 00:00:00+00'::timestamptz,
            '2030-01-01 00:00:00+00'::timestamptz, '{"n": 1}'::jsonb, 0, 4, null::text,
            null::text
        )
    $$,
    'a record is stored pending, due now, with the queue''s max_attempts'
);

select pgclaim_test.keep(
    'b', pgclaim.enqueue(queue => 'eq', payload => '{}', priority => 7, max_attempts => 2)
);
select results_eq(
    $$
        select r.priority, r.max_attempts from pgclaim.records as r
        where r.id = pgclaim_test.id('b')
    $$,
    $$ values (7, 2) $$,
    'priority and max_attempts given by name override the defaults'
);

select pgclaim_test.keep(
    'later', pgclaim.enqueue('eq_future', '{}', run_at => '2030-01-01 01:00:00+00')
);
select is_empty(
    $$ select * from pgclaim.claim_batch('eq_future', 'w1') $$,
    'a record due in an hour is not claimable now'
);
select pgclaim_test.advance('59 minutes 59 seconds');
select is_empty(
    $$ select * from pgclaim.claim_batch('eq_future', 'w1') $$,
    'nor a second before it is due'
);
select pgclaim_test.advance('1 second');
select results_eq(
    $$ select c.id from pgclaim.claim_batch('eq_future', 'w1') as c $$,
    $$ values (pgclaim_test.id('later')) $$,
    'it is claimable once due'
);
select cmp_ok(
    pgclaim.enqueue('eq', '{}'), '>', pgclaim_test.id('b'), 'ids ascend with enqueue order'
);

select * from finish();
rollback;
