-- The flow-control settings of create_queue and alter_queue: bad values are
-- refused with 22023 and change nothing; burst defaults to the rate.
begin;
select plan(16);

select pgclaim.create_queue('fs', rate => 2.5);
select results_eq(
    $$ select q.rate, q.burst, q.max_running, q.fair, q.dedup_window from pgclaim.queues as q
       where q.queue = 'fs' $$,
    $$ values (2.5::double precision, 3, null::integer, false, null::interval) $$,
    'burst defaults to the rate, rounded up'
);
select pgclaim_test.rejects(
    $$ select pgclaim.create_queue('fs2', max_running => -1) $$, '22023', 'a negative max_running'
);
select pgclaim_test.rejects(
    $$ select pgclaim.create_queue('fs2', rate => -1) $$, '22023', 'a negative rate'
);
select pgclaim_test.rejects(
    $$ select pgclaim.create_queue('fs2', rate => 'NaN') $$, '22023', 'a rate that is NaN'
);
select pgclaim_test.rejects(
    $$ select pgclaim.create_queue('fs2', burst => 5) $$, '22023', 'a burst without rate'
);
select pgclaim_test.rejects(
    $$ select pgclaim.alter_queue('fs', burst => 0) $$, '22023', 'a burst of 0'
);
select pgclaim_test.rejects(
    $$ select pgclaim.alter_queue('fs', dedup_window => '-1 minute') $$, '22023',
    'a negative dedup_window'
);
select pgclaim_test.rejects(
    $$ select pgclaim.create_queue('fs2', min_priority => -2147483648) $$, '22023',
    'the lowest integer as min_priority (it marks records waiting behind a group''s head)'
);
select pgclaim.alter_queue('fs', max_running => 4, fair => true, dedup_window => '1 day');
select results_eq(
    $$ select q.rate, q.burst, q.max_running, q.fair, q.dedup_window from pgclaim.queues as q
       where q.queue = 'fs' $$,
    $$ values (2.5::double precision, 3, 4, true, '1 day'::interval) $$,
    'alter_queue changes only what it is given'
);

select * from finish();
rollback;
