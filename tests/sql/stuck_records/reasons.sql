-- stuck_records: running records whose lease expired or whose worker went
-- silent, with the reason and for how long; reclaiming empties it.
begin;
select plan(2);

select pgclaim_test.set_now('2030-01-01 00:00:00+00');
select pgclaim.configure(worker_timeout => '1 minute');
select pgclaim.create_queue('sr');
select pgclaim_test.keep('expired', pgclaim.enqueue('sr', '{}', priority => 3));
select pgclaim_test.keep('silent', pgclaim.enqueue('sr', '{}', priority => 2));
select pgclaim_test.keep('fine', pgclaim.enqueue('sr', '{}', priority => 1));
select pgclaim.register_worker('w_silent');
select pgclaim.register_worker('w_alive');
select pgclaim.claim_batch('sr', 'w_gone', 1, lease => '1 minute');
select pgclaim.claim_batch('sr', 'w_silent', 1, lease => '1 hour');
select pgclaim.claim_batch('sr', 'w_alive', 1, lease => '1 hour');
select pgclaim_test.advance('3 minutes');
select pgclaim.heartbeat('w_alive');

select results_eq(
    $$
        select s.id, s.queue, s.worker_id, s.attempt, s.reason, s.stuck_for
        from pgclaim.stuck_records as s order by s.id
    $$,
    $$
        values
        (pgclaim_test.id('expired'), 'sr', 'w_gone', 1, 'lease expired', '2 minutes'::interval),
        (pgclaim_test.id('silent'), 'sr', 'w_silent', 1, 'worker silent', '2 minutes'::interval)
    $$,
    'an expired lease and a silent worker''s record, with reason and duration'
);
select pgclaim.reclaim_orphans();
select is_empty(
    $$ select * from pgclaim.stuck_records $$, 'nothing is stuck after reclaim_orphans'
);

select * from finish();
rollback;
