-- worker_status: alive while heard from within worker_timeout; what each holds.
begin;
select plan(3);

select pgclaim_test.set_now('2030-01-01 00:00:00+00');
select pgclaim.configure(worker_timeout => '1 minute');
select pgclaim.create_queue('ws', lease => '1 hour');
select pgclaim.enqueue_batch('ws', array['{}', '{}', '{}']::jsonb[]);
select pgclaim.register_worker('w1', '{"host": "a"}');
select pgclaim.register_worker('w2');
select pgclaim.claim_batch('ws', 'w1', 2);
select pgclaim_test.advance('30 seconds');
select pgclaim.heartbeat('w2');
select pgclaim_test.advance('30 seconds');

select results_eq(
    $$
        select s.worker_id, s.info, s.silent_for, s.alive, s.held
        from pgclaim.worker_status as s order by s.worker_id
    $$,
    $$
        values ('w1', '{"host": "a"}'::jsonb, '1 minute'::interval, true, 2::bigint),
        ('w2', '{}'::jsonb, '30 seconds'::interval, true, 0::bigint)
    $$,
    'silent for exactly worker_timeout still counts as alive'
);
select pgclaim_test.advance('1 second');
select results_eq(
    $$ select s.worker_id, s.alive from pgclaim.worker_status as s order by s.worker_id $$,
    $$ values ('w1', false), ('w2', true) $$,
    'silent for longer than worker_timeout is not alive'
);
select pgclaim.configure(worker_timeout => '1 hour');
select results_eq(
    $$ select s.worker_id, s.alive from pgclaim.worker_status as s order by s.worker_id $$,
    $$ values ('w1', true), ('w2', true) $$,
    'alive follows the configured worker_timeout'
);

select * from finish();
rollback;
