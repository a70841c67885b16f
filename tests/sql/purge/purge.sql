-- purge deletes only finished records, older than the queue's retention by
-- default or than older_than, at most max_records a call.
begin;
select plan(14);

select pgclaim_test.set_now('2030-01-01 00:00:00+00');
select pgclaim.create_queue('pg', retention => '1 day', max_attempts => 1, max_lease => '30 days');
select pgclaim.create_queue('pg_other', retention => '1 day', max_lease => '30 days');
select pgclaim_test.keep('c1', pgclaim.enqueue('pg', '{}', priority => 5));
select pgclaim_test.keep('f1', pgclaim.enqueue('pg', '{}', priority => 4));
select pgclaim_test.keep('x1', pgclaim.enqueue('pg', '{}', priority => 3));
select pgclaim_test.keep('run', pgclaim.enqueue('pg', '{}', priority => 2));
select pgclaim_test.keep('c2', pgclaim.enqueue('pg', '{}', priority => 1));
select pgclaim_test.keep('wait', pgclaim.enqueue('pg', '{}', run_at => '2031-01-01 00:00:00+00'));
select pgclaim_test.keep('o', pgclaim.enqueue('pg_other', '{}'));
select pgclaim.claim_batch('pg', 'w1', 5, lease => '10 days');
select pgclaim.claim_batch('pg_other', 'w1', 5, lease => '10 days');
select pgclaim.complete('w1', array[pgclaim_test.id('c1'), pgclaim_test.id('o')]);
select pgclaim.fail('w1', pgclaim_test.id('f1'), 'no');
select pgclaim.cancel(array[pgclaim_test.id('x1')]);
select pgclaim_test.advance('12 hours');
select pgclaim.complete('w1', array[pgclaim_test.id('c2')]);
select pgclaim_test.advance('12 hours');

select is(pgclaim.purge('pg'), 0, 'a record finished exactly one retention ago is kept');
select pgclaim_test.advance('1 second');
select is(pgclaim.purge('pg'), 3, 'completed, failed and cancelled records past retention go');
select set_eq(
    $$ select r.id from pgclaim_test.all_records as r where r.queue = 'pg' $$,
    $$ values (pgclaim_test.id('run')), (pgclaim_test.id('c2')), (pgclaim_test.id('wait')) $$,
    'the running, pending and recent records are kept'
);
select is(
    pgclaim_test.status(pgclaim_test.id('o')), 'completed',
    'an old finished record of another queue is kept'
);
select is(pgclaim.purge('pg', older_than => '1 hour'), 1, 'older_than overrides the retention');
select is(pgclaim.purge('pg', older_than => '0 seconds'), 0, 'unfinished records are never purged');

select pgclaim.enqueue_batch('pg', array['{}', '{}', '{}']::jsonb[]);
select pgclaim.complete('w2', array(select c.id from pgclaim.claim_batch('pg', 'w2', 10) as c));
select pgclaim_test.advance('1 second');
select is(pgclaim.purge('pg', '0 seconds', max_records => 2), 2, 'max_records bounds one call');
select is(pgclaim.purge('pg', '0 seconds'), 1, 'the next call takes the rest');

select pgclaim_test.rejects($$ select pgclaim.purge('pg_missing') $$, 'PC001', 'an unknown queue');
select pgclaim_test.rejects(
    $$ select pgclaim.purge('pg', older_than => '-1 day') $$, '22023', 'a negative older_than'
);
select pgclaim_test.rejects(
    $$ select pgclaim.purge('pg', max_records => 0) $$, '22023', 'max_records 0'
);

select * from finish();
rollback;
