-- heartbeat marks the worker alive and extends every lease it holds by the
-- length each was claimed with; an unknown worker is registered.
begin;
select plan(10);

select pgclaim_test.set_now('2030-01-01 00:00:00+00');
select pgclaim.create_queue('hb', lease => '5 minutes');
select pgclaim_test.keep('a', pgclaim.enqueue('hb', '{}', priority => 2));
select pgclaim_test.keep('b', pgclaim.enqueue('hb', '{}', priority => 1));
select pgclaim_test.keep('other', pgclaim.enqueue('hb', '{}'));
select pgclaim.register_worker('w1');
select pgclaim.claim_batch('hb', 'w1', 1, lease => '1 minute');
select pgclaim.claim_batch('hb', 'w1', 1);
select pgclaim.claim_batch('hb', 'w2', 1);
select pgclaim_test.advance('30 seconds');

select is(pgclaim.heartbeat('w1'), 2, 'heartbeat returns how many leases it extended');
select results_eq(
    $$
        select r.lease_until from pgclaim.records as r
        where r.id in (pgclaim_test.id('a'), pgclaim_test.id('b')) order by r.id
    $$,
    $$
        values ('2030-01-01 00:01:30+00'::timestamptz), ('2030-01-01 00:05:30+00'::timestamptz)
    $$,
    'each lease runs again from now for the length it was claimed with'
);
select is(
    (
        select w.last_seen from pgclaim.workers as w
        where w.worker_id = 'w1'
    ),
    '2030-01-01 00:00:30+00'::timestamptz,
    'last_seen is now'
);
select is(
    (
        select r.lease_until from pgclaim.records as r
        where r.id = pgclaim_test.id('other')
    ),
    '2030-01-01 00:05:00+00'::timestamptz,
    'another worker''s lease is untouched'
);
select is(pgclaim.heartbeat('w9'), 0, 'an unknown worker holds nothing');
select isnt_empty(
    $$ select 1 from pgclaim.workers as w where w.worker_id = 'w9' $$,
    'and is registered by its heartbeat'
);

select pgclaim_test.rejects($$ select pgclaim.heartbeat(null) $$, '22004', 'a null worker_id');
select pgclaim_test.rejects($$ select pgclaim.heartbeat('') $$, '22023', 'an empty worker_id');

select * from finish();
rollback;
