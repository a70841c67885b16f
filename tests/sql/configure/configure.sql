-- configure changes the cluster-wide settings given and leaves the others alone.
begin;
select plan(10);

select results_eq(
    $$ select c.worker_timeout, c.sweep_limit from pgclaim.config as c $$,
    $$ values ('1 minute'::interval, 10) $$,
    'the defaults: worker_timeout 1 minute, sweep_limit 10'
);

select pgclaim.configure(worker_timeout => '5 minutes');
select results_eq(
    $$ select c.worker_timeout, c.sweep_limit from pgclaim.config as c $$,
    $$ values ('5 minutes'::interval, 10) $$,
    'worker_timeout changes alone'
);

select pgclaim.configure(sweep_limit => 0);
select results_eq(
    $$ select c.worker_timeout, c.sweep_limit from pgclaim.config as c $$,
    $$ values ('5 minutes'::interval, 0) $$,
    'sweep_limit changes alone, and 0 is allowed'
);

select lives_ok($$ select pgclaim.configure() $$, 'configure with nothing changes nothing');
select pgclaim_test.rejects(
    $$ select pgclaim.configure(worker_timeout => '0 seconds') $$, '22023', 'a zero worker_timeout'
);
select pgclaim_test.rejects(
    $$ select pgclaim.configure(worker_timeout => '-1 minute') $$, '22023',
    'a negative worker_timeout'
);
select pgclaim_test.rejects(
    $$ select pgclaim.configure(sweep_limit => -1) $$, '22023', 'a negative sweep_limit'
);

select * from finish();
rollback;
