-- cancel: pending and running records become cancelled; a running record's
-- holder is then refused; finished and unknown ids are skipped.
begin;
select plan(14);

select pgclaim_test.set_now('2030-01-01 00:00:00+00');
select pgclaim.create_queue('cx');
select pgclaim_test.keep('run', pgclaim.enqueue('cx', '{}', priority => 2));
select pgclaim_test.keep('done', pgclaim.enqueue('cx', '{}', priority => 1));
select pgclaim_test.keep('wait', pgclaim.enqueue('cx', '{}'));
select pgclaim.claim_batch('cx', 'w1', 2);
select pgclaim.complete('w1', array[pgclaim_test.id('done')]);

select is(
    pgclaim.cancel(
        array[pgclaim_test.id('run'), pgclaim_test.id('done'), pgclaim_test.id('wait'), -1]
    ),
    2,
    'cancel counts the pending and the running record only'
);
select results_eq(
    $$
        select r.status::text, r.finished_at from pgclaim_test.all_records as r
        where r.id in (pgclaim_test.id('run'), pgclaim_test.id('wait')) order by r.id
    $$,
    $$
        values ('cancelled', '2030-01-01 00:00:00+00'::timestamptz),
        ('cancelled', '2030-01-01 00:00:00+00'::timestamptz)
    $$,
    'both are cancelled, finished now'
);
select
    is(
        pgclaim_test.status(pgclaim_test.id('done')),
        'completed',
        'a completed record stays completed'
    );

select is(
    pgclaim.complete('w1', array[pgclaim_test.id('run')]), 0,
    'the former holder cannot complete a cancelled record'
);
select throws_ok(
    format($$ select pgclaim.fail('w1', %s, 'x') $$, pgclaim_test.id('run')), 'PC003', null,
    'the former holder cannot fail a cancelled record'
);
select is(
    pgclaim.extend_lease('w1', array[pgclaim_test.id('run')]), 0,
    'the former holder cannot extend a cancelled record'
);
select is(
    pgclaim.release('w1', array[pgclaim_test.id('run')]), 0,
    'the former holder cannot release a cancelled record'
);
select is(pgclaim.heartbeat('w1'), 0, 'a heartbeat extends no cancelled record');
select is(pgclaim_test.status(pgclaim_test.id('run')), 'cancelled', 'the record stays cancelled');
select is_empty(
    $$ select * from pgclaim.claim_batch('cx', 'w2') $$, 'a cancelled record is never handed out'
);
select is(
    pgclaim.cancel(array[pgclaim_test.id('run')]), 0, 'cancelling again changes nothing'
);
select is_empty(
    $$ select * from pgclaim.stuck_records as s where s.queue = 'cx' $$,
    'a cancelled record is not reported stuck'
);

select pgclaim_test.rejects($$ select pgclaim.cancel(null) $$, '22004', 'null ids');

select * from finish();
rollback;
