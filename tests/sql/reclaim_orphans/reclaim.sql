-- reclaim_orphans: expired leases go back to pending (failed when out of
-- attempts), so do the records of workers silent past worker_timeout; live
-- leases of live workers stay; bounded by max_records.
begin;
select plan(15);

select pgclaim_test.set_now('2030-01-01 00:00:00+00');
select pgclaim.configure(worker_timeout => '1 minute');
select pgclaim.create_queue('ro', max_attempts => 3);
select pgclaim.create_queue('ro_one', max_attempts => 1);
select pgclaim.create_queue('ro_bulk');
select pgclaim_test.keep('expired', pgclaim.enqueue('ro', '{}', priority => 3));
select pgclaim_test.keep('alive', pgclaim.enqueue('ro', '{}', priority => 2));
select pgclaim_test.keep('dead', pgclaim.enqueue('ro', '{}', priority => 1));
select pgclaim_test.keep('last', pgclaim.enqueue('ro_one', '{}'));
select pgclaim.register_worker('w_alive');
select pgclaim.register_worker('w_dead');
select pgclaim.claim_batch('ro', 'w_gone', 1, lease => '1 minute');
select pgclaim.claim_batch('ro', 'w_alive', 1, lease => '1 hour');
select pgclaim.claim_batch('ro', 'w_dead', 1, lease => '1 hour');
select pgclaim.claim_batch('ro_one', 'w_gone', 1, lease => '1 minute');
select pgclaim_test.advance('2 minutes');
select pgclaim.heartbeat('w_alive');

select is(pgclaim.reclaim_orphans(), 3, 'two expired leases and one dead worker''s record');
select results_eq(
    $$
        select r.status::text, r.attempt, r.worker_id, r.lease_until, r.last_error
        from pgclaim_test.all_records as r where r.id = pgclaim_test.id('expired')
    $$,
    $$ values ('pending', 1, null::text, null::timestamptz, 'lease of worker w_gone expired') $$,
    'an expired lease goes back to pending with its attempt counted'
);
select results_eq(
    $$
        select r.status::text, r.finished_at from pgclaim_test.all_records as r
        where r.id = pgclaim_test.id('last')
    $$,
    $$ values ('failed', '2030-01-01 00:02:00+00'::timestamptz) $$,
    'an expired lease on its last attempt is failed'
);
select results_eq(
    $$
        select r.status::text, r.last_error from pgclaim_test.all_records as r
        where r.id = pgclaim_test.id('dead')
    $$,
    $$ values ('pending', 'worker w_dead stopped heartbeating') $$,
    'a live lease of a worker silent past worker_timeout goes back to pending'
);
select is(
    pgclaim_test.status(pgclaim_test.id('alive')), 'running',
    'a live lease of a live worker stays running'
);
select is(pgclaim.reclaim_orphans(), 0, 'a second run finds nothing');

select pgclaim.configure(worker_timeout => '1 hour');
select pgclaim.claim_batch('ro', 'w_dead', 1, lease => '1 hour');
select is(
    pgclaim.reclaim_orphans(), 0,
    'a worker silent for less than worker_timeout is not dead'
);

select pgclaim.enqueue_batch('ro_bulk', array['{}', '{}', '{}', '{}', '{}']::jsonb[]);
select pgclaim.claim_batch('ro_bulk', 'w_gone', 10, lease => '1 minute');
select pgclaim_test.advance('2 minutes');
select pgclaim.heartbeat('w_alive');
select pgclaim.heartbeat('w_dead');
select is(pgclaim.reclaim_orphans(max_records => 2), 2, 'max_records bounds one run');
select is(pgclaim.reclaim_orphans(), 3, 'the next run takes the rest');

select pgclaim.configure(worker_timeout => '1 minute');
select pgclaim.enqueue_batch('ro_bulk', array['{}', '{}', '{}']::jsonb[]);
select pgclaim.register_worker('w_mixed');
select pgclaim.claim_batch('ro_bulk', 'w_mixed', 1, lease => '1 hour');
select pgclaim.claim_batch('ro_bulk', 'w_gone', 2, lease => '1 minute');
select pgclaim_test.advance('2 minutes');
select pgclaim.heartbeat('w_alive');
select pgclaim.heartbeat('w_dead');
select is(
    pgclaim.reclaim_orphans(max_records => 2), 2,
    'max_records bounds a run that finds a dead worker''s record and expired leases'
);
select is(pgclaim.reclaim_orphans(), 1, 'the next run takes the last one');

select pgclaim_test.rejects(
    $$ select pgclaim.reclaim_orphans(0) $$, '22023', 'max_records 0'
);
select pgclaim_test.rejects(
    $$ select pgclaim.reclaim_orphans(null) $$, '22004', 'a null max_records'
);

select * from finish();
rollback;
