-- grant_queue / revoke_queue: a queue without grants is open to the pgclaim roles;
-- the first grant restricts it to its granted roles (and their members) and
-- pgclaim_admin; revoking the last grant opens it again.
begin;
select plan(27);

create role pgclaim_t_app nologin;
create role pgclaim_t_other nologin;
create role pgclaim_t_group nologin;
create role pgclaim_t_member nologin;
grant pgclaim_producer to pgclaim_t_app;
grant pgclaim_worker to pgclaim_t_app;
grant pgclaim_producer to pgclaim_t_other;
grant pgclaim_worker to pgclaim_t_other;
grant pgclaim_worker to pgclaim_t_member;
grant pgclaim_t_group to pgclaim_t_member;
grant pgclaim_t_app to current_user;
grant pgclaim_t_other to current_user;
grant pgclaim_t_member to current_user;

select pgclaim.create_queue('gq');
select pgclaim.create_queue('open_q');

set local role pgclaim_t_other;
select lives_ok($$ select pgclaim.enqueue('gq', '{}') $$, 'a queue without grants is open');
reset role;

select is(
    pgclaim.grant_queue('gq', 'pgclaim_t_app', array['enqueue', 'claim', 'read']),
    array['claim', 'enqueue', 'read'],
    'grant_queue returns the role''s privileges on the queue, sorted'
);
select is(
    pgclaim.grant_queue('gq', 'pgclaim_t_app', array['claim']), array['claim', 'enqueue', 'read'],
    'granting again is a no-op'
);
select is(
    (
        select q.restricted from pgclaim.queues as q
        where q.queue = 'gq'
    ), true,
    'the first grant restricts the queue'
);

set local role pgclaim_t_other;
select throws_ok(
    $$ select pgclaim.enqueue('gq', '{}') $$, '42501', null,
    'another role may not enqueue into a restricted queue'
);
select throws_ok(
    $$ select pgclaim.enqueue_batch('gq', array['{}']::jsonb []) $$, '42501', null,
    'nor enqueue a batch'
);
select throws_ok(
    $$ select pgclaim.enqueue_items('gq', '[{"payload": {}}]') $$, '42501', null,
    'nor enqueue items'
);
select throws_ok(
    $$ select pgclaim.claim_batch('gq', 'wo', 1) $$, '42501', null, 'nor claim from it'
);
select is_empty(
    $$ select 1 from pgclaim.queue_stats as s where s.queue = 'gq' $$,
    'nor see it in queue_stats'
);
select is(
    pgclaim.health(max_xact_age => '100 years') -> 'queues' -> 'gq', null,
    'nor in health()'
);
select isnt_empty(
    $$ select 1 from pgclaim.queue_stats as s where s.queue = 'open_q' $$,
    'a queue without grants is still listed for it'
);
reset role;

set local role pgclaim_t_app;
select lives_ok($$ select pgclaim.enqueue('gq', '{}') $$, 'the granted role enqueues');
select is(
    (select pg_catalog.count(*)::int from pgclaim.claim_batch('gq', 'wa', 10)), 2,
    'the granted role claims'
);
select isnt_empty(
    $$ select 1 from pgclaim.queue_stats as s where s.queue = 'gq' $$,
    'the granted role reads it'
);
select is(
    (
        select pg_catalog.count(*)::int
        from pgclaim.enqueue_items('gq', '[{"payload": {}, "run_at": "2999-01-01T00:00:00Z"}]')
    ), 1,
    'the granted role enqueues items'
);
reset role;

select pgclaim.grant_queue('gq', 'pgclaim_t_group', array['claim']);
select pgclaim.enqueue('gq', '{}');
set local role pgclaim_t_member;
select is(
    (select pg_catalog.count(*)::int from pgclaim.claim_batch('gq', 'wm', 10)), 1,
    'a member of a granted group role claims'
);
select is_empty(
    $$ select 1 from pgclaim.queue_stats as s where s.queue = 'gq' $$,
    'but only with the privileges granted (no read)'
);
reset role;

set local role pgclaim_admin;
select isnt_empty(
    $$ select 1 from pgclaim.queue_stats as s where s.queue = 'gq' $$,
    'pgclaim_admin sees every queue'
);
select results_eq(
    $$ select p.role, p.privileges from pgclaim.queue_permissions as p order by p.role $$,
    $$
        values
        ('pgclaim_t_app', array['claim', 'enqueue', 'read']),
        ('pgclaim_t_group', array['claim'])
    $$,
    'queue_permissions lists the grants'
);
reset role;

select is(
    pgclaim.revoke_queue('gq', 'pgclaim_t_app', array['enqueue']), array['claim', 'read'],
    'revoke_queue returns what is left'
);
select pgclaim.revoke_queue('gq', 'pgclaim_t_app', array['claim', 'read']);
select is(
    (
        select q.restricted from pgclaim.queues as q
        where q.queue = 'gq'
    ), true,
    'a queue with a grant left stays restricted'
);
select pgclaim.revoke_queue('gq', 'pgclaim_t_group', array['claim', 'read']);
select is(
    (
        select q.restricted from pgclaim.queues as q
        where q.queue = 'gq'
    ), false,
    'revoking the last grant opens the queue'
);
set local role pgclaim_t_other;
select lives_ok($$ select pgclaim.enqueue('gq', '{}') $$, 'and every role may use it again');
reset role;

set local role pgclaim_worker;
select throws_ok(
    $$ select pgclaim.grant_queue('gq', 'pgclaim_t_other', array['claim']) $$, '42501', null,
    'only pgclaim_admin grants'
);
select throws_ok(
    $$ select * from pgclaim.queue_permissions $$, '42501', null,
    'only pgclaim_admin reads queue_permissions'
);
reset role;

select pgclaim.grant_queue('gq', 'pgclaim_t_app', array['read']);
select is(
    (
        select pg_catalog.count(*)::int from pgclaim.queue_grants as g
        where g.queue = 'gq'
    ), 1,
    'the grants are there ...'
);
select pgclaim.drop_queue('gq', true);
select is(
    (
        select pg_catalog.count(*)::int from pgclaim.queue_grants as g
        where g.queue = 'gq'
    ), 0,
    '... and go with the queue'
);

select * from finish();
rollback;
