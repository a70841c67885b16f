-- Who a caller is: a claim records the role in force, and the reports, heartbeat and
-- deregister_worker of another role change nothing of it (pgclaim_admin aside).
begin;
select plan(23);

create role pgclaim_t_a nologin;
create role pgclaim_t_b nologin;
grant pgclaim_worker to pgclaim_t_a;
grant pgclaim_worker to pgclaim_t_b;
grant pgclaim_t_a to current_user;
grant pgclaim_t_b to current_user;

select pgclaim_test.set_now('2030-01-01 00:00:00+00');
select pgclaim.create_queue('idq');
select pgclaim.enqueue_batch('idq', array['{}', '{}', '{}', '{}']::jsonb[]);

set local role pgclaim_t_a;
select pgclaim.register_worker('wa');
create temp table held on commit drop as
select * from pgclaim.claim_batch('idq', 'wa', 3);
reset role;
grant select on held to public;

select is(
    (
        select pg_catalog.count(distinct r.holder_role)::int from pgclaim.records as r
        where r.status = 'running'
    ),
    1, 'a claim records one role for its batch'
);
select is(
    (
        select r.holder_role from pgclaim.records as r
        where r.status = 'running'
        order by r.id limit 1
    ),
    'pgclaim_t_a'::regrole::oid, 'the role in force (SET ROLE) is the one recorded'
);

select pgclaim_test.keep('before', pgclaim_test.digest());
set local role pgclaim_t_b;
select is(
    pgclaim.complete(
        'wa', array(select h.id from held as h), array(select h.lease_token from held as h)
    ),
    0, 'another role completes none of them, even with worker id and tokens'
);
select is(
    pgclaim.extend_lease('wa', array(select h.id from held as h), '1 minute'),
    0, 'another role extends none of them'
);
select is(
    pgclaim.release('wa', array(select h.id from held as h)), 0,
    'another role releases none of them'
);
select is(
    (select pg_catalog.count(*)::int from pgclaim.fail_batch(
        'wa', array(select h.id from held as h), array(select 'x' from held)
    )),
    0, 'another role fails none of them in a batch'
);
select throws_ok(
    pg_catalog.format(
        'select pgclaim.fail(%L, %s, %L, lease_token => %s, fatal => true)',
        'wa', (select min(h.id) from held as h), 'x', (select min(h.lease_token) from held as h)
    ),
    'PC003', null, 'fail from another role raises PC003'
);
select throws_ok(
    $$ select pgclaim.heartbeat('wa') $$, 'PC005', null,
    'another role may not heartbeat the worker id'
);
select throws_ok(
    $$ select pgclaim.deregister_worker('wa') $$, 'PC005', null,
    'another role may not deregister the worker id'
);
select throws_ok(
    $$ select pgclaim.register_worker('wa', '{"x": 1}') $$, 'PC005', null,
    'another role may not re-register the worker id'
);
select is(
    (
        select pg_catalog.count(*)::int from pgclaim.worker_status as w
        where w.worker_id = 'wa'
    ),
    0, 'another role does not see the worker in worker_status'
);
reset role;
select is(pgclaim_test.digest(), pgclaim_test.kept('before'), 'nothing changed');

-- The message of PC003 names neither the holder's role nor its token.
set local role pgclaim_t_b;
create function pg_temp.fail_message() returns text language plpgsql as $fn$
declare
    v_text text;
begin
    perform pgclaim.fail('wa', (select min(h.id) from pg_temp.held as h), 'x');
    return 'no error';
exception when sqlstate 'PC003' then
    get stacked diagnostics v_text = message_text;
    return v_text;
end;
$fn$;
select pg_catalog.set_config('pgclaim_test.message', pg_temp.fail_message(), true);
reset role;
select ok(
    pgclaim_test.kept('message') ~ 'does not hold'
    and pgclaim_test.kept('message') !~ (select min(h.lease_token)::text from held as h)
    and pgclaim_test.kept('message') !~ 'pgclaim_t_a',
    'PC003 shows neither the lease token nor the holding role'
);

-- The holder itself, under its own role, reports as usual.
set local role pgclaim_t_a;
select is(
    pgclaim.heartbeat('wa'), 3, 'the holder''s heartbeat extends its three leases'
);
select is(
    pgclaim.complete('wa', array[(select min(h.id) from held as h)]), 1,
    'the holder completes its record'
);
select is(
    (
        select pg_catalog.count(*)::int from pgclaim.worker_status as w
        where w.worker_id = 'wa'
    ),
    1, 'the holder sees its worker in worker_status'
);
reset role;

-- pgclaim_admin acts on any worker's records.
set local role pgclaim_admin;
select is(
    pgclaim.release('wa', array(select h.id from held as h)), 2,
    'an admin releases another role''s records'
);
select is(
    (
        select pg_catalog.count(*)::int from pgclaim.worker_status as w
        where w.worker_id = 'wa'
    ),
    1, 'an admin sees every worker'
);
reset role;

-- A worker id silent past worker_timeout is dead only for the records its own role claimed.
set local role pgclaim_t_b;
select pgclaim.register_worker('wb');
select pgclaim.claim_batch('idq', 'wb', 1);
reset role;
set local role pgclaim_t_a;
select pg_catalog.set_config(
    'pgclaim_test.squat', (select c.id from pgclaim.claim_batch('idq', 'wq', 1) as c)::text, true
);
reset role;
set local role pgclaim_t_b;
select pgclaim.register_worker('wq');
reset role;
select pgclaim_test.advance('2 minutes');
set local role pgclaim_t_a;
select is(
    pgclaim.extend_lease('wq', array[pgclaim_test.id('squat')]), 1,
    'the holder keeps its lease alive'
);
reset role;
select is(pgclaim.reclaim_orphans(), 1, 'only the silent worker''s own record comes back');
select is(
    pgclaim_test.status(pgclaim_test.id('squat')), 'running',
    'a worker id registered by another role and left silent takes nothing from the holder'
);

-- A worker id registered before release 0.2.0 (no owner) is adopted by the first role.
insert into pgclaim.workers (worker_id, started_at, last_seen) values (
    'old', pgclaim._now(), pgclaim._now()
);
set local role pgclaim_t_a;
select lives_ok($$ select pgclaim.heartbeat('old') $$, 'a worker id without owner is adopted');
reset role;
select is(
    (
        select w.owner_role from pgclaim.workers as w
        where w.worker_id = 'old'
    ),
    'pgclaim_t_a'::regrole::oid, 'by the role that touched it first'
);

select * from finish();
rollback;
