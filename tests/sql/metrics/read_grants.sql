-- metrics and dead_letters show a restricted queue only to the roles with read on
-- it (and pgclaim_admin), as queue_stats does.
begin;
select plan(7);

create role pgclaim_t_reader nologin;
create role pgclaim_t_blind nologin;
grant pgclaim_worker to pgclaim_t_reader;
grant pgclaim_worker to pgclaim_t_blind;
grant pgclaim_producer to pgclaim_t_blind;
grant pgclaim_t_reader to current_user;
grant pgclaim_t_blind to current_user;

select pgclaim.create_queue('secret', max_attempts => 1);
select pgclaim.create_queue('open_q', max_attempts => 1);
select pgclaim.grant_queue('secret', 'pgclaim_t_reader', array['read']);
select pgclaim.enqueue(v.q, '{}') from (values ('secret'), ('open_q')) as v (q);
select pgclaim.claim_batch(v.q, 'w1', 1) from (values ('secret'), ('open_q')) as v (q);
select pgclaim.fail('w1', r.id, 'boom ' || r.queue)
from pgclaim.records as r
where r.status = 'running';

set local role pgclaim_t_blind;
select set_eq(
    $$ select distinct x.queue from pgclaim.metrics() as x where x.queue is not null $$,
    $$ values ('open_q') $$,
    'a role without read sees no metric of the restricted queue'
);
select set_eq(
    $$ select d.queue from pgclaim.dead_letters() as d $$,
    $$ values ('open_q') $$,
    'nor its dead letters'
);
select throws_ok(
    $$ select * from pgclaim.dead_letters('secret') $$, '42501', null,
    'and asking for them by name is refused'
);
select ok(
    exists (
        select from pgclaim.metrics() as x
        where x.metric = 'workers'
    ),
    'the worker counts are there for every reader'
);
reset role;

set local role pgclaim_t_reader;
select set_eq(
    $$ select distinct x.queue from pgclaim.metrics() as x where x.queue is not null $$,
    $$ values ('open_q'), ('secret') $$,
    'a role granted read sees both queues'
);
select is(
    (select d.last_error from pgclaim.dead_letters('secret') as d), 'boom secret',
    'and the dead letters of the restricted one'
);
reset role;

set local role pgclaim_admin;
select set_eq(
    $$ select distinct x.queue from pgclaim.metrics() as x where x.queue is not null $$,
    $$ values ('open_q'), ('secret') $$,
    'pgclaim_admin sees every queue'
);
reset role;

select * from finish();
rollback;
