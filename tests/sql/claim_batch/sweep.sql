-- Before claiming, claim_batch takes back at most config.sweep_limit expired
-- leases of its own queue; with sweep_limit 0 it takes back none.
begin;
select plan(7);

select pgclaim_test.set_now('2030-01-01 00:00:00+00');
select pgclaim.configure(sweep_limit => 2);
select pgclaim.create_queue('sw', lease => '1 minute');
select pgclaim.create_queue('sw_other', lease => '1 minute');
select pgclaim.enqueue_batch('sw', array['{}', '{}', '{}', '{}', '{}']::jsonb[]);
select pgclaim.enqueue('sw_other', '{}');
select pgclaim.claim_batch('sw', 'w1', 10);
select pgclaim.claim_batch('sw_other', 'w1', 10);
select pgclaim_test.advance('2 minutes');

create temp table c on commit drop as
select * from pgclaim.claim_batch('sw', 'w2', 1);

select is(
    (
        select pg_catalog.count(*)::int from pgclaim.records as r
        where r.queue = 'sw' and r.worker_id = 'w1' and r.status = 'running'
    ),
    3,
    'the sweep took back only sweep_limit (2) expired leases'
);
select results_eq(
    $$ select c.attempt from c $$,
    $$ values (2) $$,
    'a swept record is claimed again with its attempt counted'
);
select results_eq(
    $$
        select r.status::text, r.attempt, r.last_error from pgclaim.records as r
        where r.queue = 'sw' and r.status = 'pending'
    $$,
    $$ values ('pending', 1, 'lease of worker w1 expired') $$,
    'the other swept record is pending with its attempt kept and the reason noted'
);
select is(
    (
        select r.status::text from pgclaim.records as r
        where r.queue = 'sw_other'
    ),
    'running',
    'the sweep does not touch other queues'
);

select pgclaim.configure(sweep_limit => 0);
select is(
    (select pg_catalog.count(*)::int from pgclaim.claim_batch('sw', 'w3', 10)), 1,
    'with sweep_limit 0 only the pending record is claimed'
);
select is(
    (
        select pg_catalog.count(*)::int from pgclaim.records as r
        where r.queue = 'sw' and r.worker_id = 'w1' and r.status = 'running'
    ),
    3,
    'and no expired lease is taken back'
);
select is(
    pgclaim.reclaim_orphans(), 4, 'reclaim_orphans still takes back every expired lease'
);

select * from finish();
rollback;
