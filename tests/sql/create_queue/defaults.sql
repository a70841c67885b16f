-- create_queue: the documented defaults, and a queue created with its own settings.
begin;
select plan(3);

select pgclaim.create_queue('cq_defaults');

select results_eq(
    $$
        select q.lease, q.max_attempts, q.backoff_base, q.backoff_max, q.retention, q.paused
        from pgclaim.queues as q where q.queue = 'cq_defaults'
    $$,
    $$
        values (
            '5 minutes'::interval, 5, '10 seconds'::interval, '1 hour'::interval,
            '7 days'::interval, false
        )
    $$,
    'a queue created with no settings takes the documented defaults'
);

select lives_ok(
    $$
        select pgclaim.create_queue(
            queue => 'cq_custom', lease => '30 seconds', max_attempts => 2,
            backoff_base => '1 second', backoff_max => '1 minute', retention => '1 day'
        )
    $$,
    'create_queue accepts every setting by name'
);

select results_eq(
    $$
        select q.lease, q.max_attempts, q.backoff_base, q.backoff_max, q.retention
        from pgclaim.queues as q where q.queue = 'cq_custom'
    $$,
    $$
        values (
            '30 seconds'::interval, 2, '1 second'::interval, '1 minute'::interval,
            '1 day'::interval
        )
    $$,
    'the settings given are stored'
);

select * from finish();
rollback;
