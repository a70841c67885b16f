-- configure sets purge_limit (finished records past retention that each
-- reclaim_orphans deletes) alone, 0 turning it off, and refuses values out of
-- 0..100000.
begin;
select plan(7);

select is(
    (select c.purge_limit from pgclaim.config as c), 1000, 'the default purge_limit is 1000'
);
select pgclaim.configure(purge_limit => 50);
select results_eq(
    $$ select c.purge_limit, c.sweep_limit, c.worker_timeout from pgclaim.config as c $$,
    $$ values (50, 10, '1 minute'::interval) $$,
    'purge_limit changes alone'
);
select pgclaim.configure(purge_limit => 0);
select is((select c.purge_limit from pgclaim.config as c), 0, '0 is allowed (no purge)');
select pgclaim_test.rejects(
    $$ select pgclaim.configure(purge_limit => -1) $$, '22023', 'a negative purge_limit'
);
select pgclaim_test.rejects(
    $$ select pgclaim.configure(purge_limit => 100001) $$, '22023', 'a purge_limit over 100000'
);

select * from finish();
rollback;
