-- A queue's limits are set with create_queue / alter_queue, must hold together,
-- and bad settings change nothing.
begin;
select plan(18);

select pgclaim.create_queue('ls');
select results_eq(
    $$
        select q.max_payload_bytes, q.max_lease, q.min_priority, q.max_priority, q.max_batch
        from pgclaim.queues as q where q.queue = 'ls'
    $$,
    $$ values (1048576, '12 hours'::interval, -1000, 1000, 10000) $$,
    'the default limits: 1 MiB, 12 hours, -1000..1000, 10000'
);
select pgclaim.alter_queue('ls', max_batch => 10, max_priority => 10);
select results_eq(
    $$
        select q.max_batch, q.max_priority, q.min_priority
        from pgclaim.queues as q where q.queue = 'ls'
    $$,
    $$ values (10, 10, -1000) $$,
    'alter_queue changes the limits given'
);
select pgclaim_test.rejects(
    $$ select pgclaim.alter_queue('ls', min_priority => 11) $$, '22023',
    'min_priority above max_priority'
);
select pgclaim_test.rejects(
    $$ select pgclaim.alter_queue('ls', max_lease => '1 minute') $$, '22023',
    'a max_lease shorter than the queue''s lease'
);
select pgclaim_test.rejects(
    $$ select pgclaim.create_queue('ls2', max_lease => '31 days') $$, '22023',
    'a max_lease over 30 days'
);
select pgclaim_test.rejects(
    $$ select pgclaim.create_queue('ls2', max_batch => 10001) $$, '22023', 'a max_batch over 10000'
);
select pgclaim_test.rejects(
    $$ select pgclaim.create_queue('ls2', max_payload_bytes => 8) $$, '22023',
    'a max_payload_bytes under 16'
);
select pgclaim_test.rejects(
    $$ select pgclaim.create_queue('ls2', max_attempts => 1001) $$, '22023',
    'a max_attempts over 1000'
);
select pgclaim_test.rejects(
    $$ select pgclaim.create_queue('ls2', retention => '1000 years') $$, '22023',
    'a retention over 100 years'
);
select pgclaim_test.rejects(
    $$ select pgclaim.create_queue('ls2', backoff_base => '1 day -25 hours') $$, '22023',
    'a backoff negative in one of its fields'
);

select * from finish();
rollback;
