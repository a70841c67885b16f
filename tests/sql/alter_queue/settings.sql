-- alter_queue changes only the settings given; records already enqueued keep
-- their max_attempts; bad input is rejected and changes nothing.
begin;
select plan(15);

select pgclaim.create_queue('aq');
select pgclaim_test.keep('before', pgclaim.enqueue('aq', '{}'));

select lives_ok(
    $$ select pgclaim.alter_queue('aq', lease => '1 minute') $$,
    'alter_queue changes one setting by name'
);

select results_eq(
    $$
        select q.lease, q.max_attempts, q.backoff_base, q.backoff_max, q.retention
        from pgclaim.queues as q where q.queue = 'aq'
    $$,
    $$
        values (
            '1 minute'::interval, 5, '10 seconds'::interval, '1 hour'::interval,
            '7 days'::interval
        )
    $$,
    'only the lease changed; the other settings are left alone'
);

select pgclaim.alter_queue(
    'aq', max_attempts => 9, backoff_base => '1 second', backoff_max => '5 seconds',
    retention => '1 day'
);
select pgclaim_test.keep('after', pgclaim.enqueue('aq', '{}'));

select results_eq(
    $$
        select r.max_attempts from pgclaim.records as r
        where r.id in (pgclaim_test.id('before'), pgclaim_test.id('after')) order by r.id
    $$,
    $$ values (5), (9) $$,
    'a record enqueued before keeps its max_attempts; a new one takes the new setting'
);

select pgclaim_test.rejects(
    $$ select pgclaim.alter_queue('aq_missing', lease => '1 minute') $$, 'PC001',
    'an unknown queue'
);
select pgclaim_test.rejects(
    $$ select pgclaim.alter_queue(null, lease => '1 minute') $$, '22004', 'a null queue name'
);
select pgclaim_test.rejects(
    $$ select pgclaim.alter_queue('aq', lease => '0 seconds') $$, '22023', 'a zero lease'
);
select pgclaim_test.rejects(
    $$ select pgclaim.alter_queue('aq', max_attempts => 0) $$, '22023', 'max_attempts 0'
);
select pgclaim_test.rejects(
    $$ select pgclaim.alter_queue('aq', backoff_max => '-1 second') $$, '22023',
    'a negative backoff_max'
);
select pgclaim_test.rejects(
    $$ select pgclaim.alter_queue('aq', retention => '0 days') $$, '22023', 'a zero retention'
);

select * from finish();
rollback;
