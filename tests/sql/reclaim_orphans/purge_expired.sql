-- reclaim_orphans also deletes finished records past their queue's retention,
-- at most config.purge_limit a call (0: none), so that retention holds with no
-- one running purge; unfinished and recent records stay, and the completion
-- totals of queue_stats follow.
begin;
select plan(12);

create function pg_temp.finished_in(queue text) returns integer
language sql as $$
    select pg_catalog.count(*)::integer from pgclaim.finished as f
    where f.queue = finished_in.queue
$$;

select pgclaim_test.set_now('2030-01-01 00:00:00+00');
select pgclaim.create_queue('px', retention => '1 day', max_attempts => 2);
select pgclaim.create_queue('px_long', retention => '30 days');
select pgclaim.create_queue('py', retention => '1 day');
select pgclaim_test.keep('c1', pgclaim.enqueue('px', '{}', priority => 4));
select pgclaim_test.keep('f1', pgclaim.enqueue('px', '{}', priority => 3));
select pgclaim_test.keep('x1', pgclaim.enqueue('px', '{}', priority => 2));
select pgclaim_test.keep('run', pgclaim.enqueue('px', '{}', priority => 1));
select pgclaim_test.keep('wait', pgclaim.enqueue('px', '{}', run_at => '2031-01-01 00:00:00+00'));
select pgclaim_test.keep('long', pgclaim.enqueue('px_long', '{}'));
select pgclaim.claim_batch('px', 'w1', 4, lease => '1 hour');
select pgclaim.claim_batch('px_long', 'w1', 1);
select pgclaim.complete('w1', array[pgclaim_test.id('c1'), pgclaim_test.id('long')]);
select pgclaim.fail('w1', pgclaim_test.id('f1'), 'no', fatal => true);
select pgclaim.cancel(array[pgclaim_test.id('x1')]);
select pgclaim_test.advance('1 day');

select is(pgclaim.reclaim_orphans(), 1, 'reclaim_orphans counts the records it took back');
select set_eq(
    $$ select r.id from pgclaim_test.all_records as r where r.queue like 'px%' $$,
    $$
        values (pgclaim_test.id('c1')), (pgclaim_test.id('f1')), (pgclaim_test.id('x1')),
        (pgclaim_test.id('run')), (pgclaim_test.id('wait')), (pgclaim_test.id('long'))
    $$,
    'a record finished exactly one retention ago is kept'
);

select pgclaim_test.advance('1 second');
select is(pgclaim.reclaim_orphans(), 0, 'no orphan left to take back');
select set_eq(
    $$ select r.id from pgclaim_test.all_records as r where r.queue like 'px%' $$,
    $$
        values (pgclaim_test.id('run')), (pgclaim_test.id('wait')), (pgclaim_test.id('long'))
    $$,
    'completed, failed and cancelled records past retention are gone; unfinished ones and '
    'those of a queue with a longer retention stay'
);
select results_eq(
    $$ select s.queue, s.completed, s.failed, s.cancelled from pgclaim.queue_stats as s
       where s.queue like 'px%' order by s.queue $$,
    $$ values ('px'::text, 0::bigint, 0::bigint, 0::bigint), ('px_long', 1, 0, 0) $$,
    'queue_stats counts what is left'
);

-- purge_limit bounds one call
select pgclaim.configure(purge_limit => 2);
select pgclaim.enqueue_batch('py', array['{}', '{}', '{}', '{}', '{}']::jsonb[]);
select pgclaim.complete('w2', array(select c.id from pgclaim.claim_batch('py', 'w2', 10) as c));
select pgclaim_test.advance('2 days');
select pgclaim.reclaim_orphans();
select is(pg_temp.finished_in('py'), 3, 'a call deletes at most purge_limit records');
select pgclaim.reclaim_orphans();
select is(pg_temp.finished_in('py'), 1, 'the next call deletes the next ones');
select pgclaim.reclaim_orphans();
select is(pg_temp.finished_in('py'), 0, 'and the last');
select results_eq(
    $$ select s.completed from pgclaim.queue_stats as s where s.queue = 'py' $$,
    $$ values (0::bigint) $$,
    'the completion total follows'
);

-- purge_limit 0 turns it off
select pgclaim.configure(purge_limit => 0);
select pgclaim.enqueue_batch('py', array['{}', '{}']::jsonb[]);
select pgclaim.complete('w3', array(
    select c.id from pgclaim.claim_batch('py', 'w3', 10) as c
));
select pgclaim_test.advance('2 days');
select pgclaim.reclaim_orphans();
select is(pg_temp.finished_in('py'), 2, 'purge_limit 0: reclaim_orphans deletes nothing');
select is(
    pg_temp.finished_in('px_long'), 1,
    'a record of a queue with a longer retention is still kept'
);
select is(pgclaim.purge('py'), 2, 'purge still deletes them');

select * from finish();
rollback;
