-- dead_letters: the newest failed records kept, with their last error and no
-- payload, newest first, bounded by max_records; bad arguments refused.
begin;
select plan(9);

select pgclaim_test.set_now('2030-01-01 00:00:00+00');
select pgclaim.create_queue('dl', max_attempts => 1);
select pgclaim.create_queue('dl2', max_attempts => 1);
select pgclaim_test.keep('first', pgclaim.enqueue('dl', '{"secret": 1}'));
select pgclaim_test.keep('second', pgclaim.enqueue('dl', '{}'));
select pgclaim_test.keep('other', pgclaim.enqueue('dl2', '{}'));
select pgclaim_test.keep('done', pgclaim.enqueue('dl', '{}'));
select pgclaim.claim_batch(v.q, 'w1', 10) from (values ('dl'), ('dl2')) as v (q);
select pgclaim.fail('w1', pgclaim_test.id('first'), 'error one');
select pgclaim_test.advance('1 minute');
select pgclaim.fail('w1', pgclaim_test.id('second'), 'error two');
select pgclaim_test.advance('1 minute');
select pgclaim.fail('w1', pgclaim_test.id('other'), 'error three');
select pgclaim.complete('w1', array[pgclaim_test.id('done')]);

select results_eq(
    $$ select d.id, d.last_error, d.attempt, d.worker_id from pgclaim.dead_letters('dl') as d $$,
    $$
        values (pgclaim_test.id('second'), 'error two', 1, 'w1'),
        (pgclaim_test.id('first'), 'error one', 1, 'w1')
    $$,
    'the failed records of the queue, newest first, with their last error'
);
select results_eq(
    $$ select d.id from pgclaim.dead_letters() as d $$,
    $$
        values (pgclaim_test.id('other')), (pgclaim_test.id('second')),
        (pgclaim_test.id('first'))
    $$,
    'of every queue when none is named'
);
select results_eq(
    $$ select d.id from pgclaim.dead_letters(max_records => 1) as d $$,
    $$ values (pgclaim_test.id('other')) $$,
    'at most max_records'
);
select is(
    (
        select d.finished_at from pgclaim.dead_letters('dl', 1) as d
    ),
    '2030-01-01 00:01:00+00'::timestamptz,
    'with the time it failed'
);
select pgclaim.retry_failed('dl');
select is_empty(
    $$ select 1 from pgclaim.dead_letters('dl') as d $$,
    'retried records are no dead letters any more'
);
select pgclaim_test.rejects(
    $$ select pgclaim.dead_letters('nope') $$, 'PC001', 'an unknown queue'
);
select throws_ok(
    $$ select pgclaim.dead_letters('dl', 0) $$, '22023', null, 'max_records below 1'
);
select throws_ok(
    $$ select pgclaim.dead_letters('dl', 1001) $$, '22023', null, 'max_records above 1000'
);

select * from finish();
rollback;
