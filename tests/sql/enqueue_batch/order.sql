-- enqueue_batch: ids in input order, one record per payload, priority and
-- run_at applied to all; an empty array adds nothing.
begin;
select plan(6);

select pgclaim_test.set_now('2030-01-01 00:00:00+00');
select pgclaim.create_queue('eb', max_attempts => 3);

select pgclaim_test.keep(
    'ids',
    array(select pgclaim.enqueue_batch('eb', array['{"n": 1}', '{"n": 2}', '{"n": 3}']::jsonb[]))
);
select results_eq(
    $$
        select (r.payload ->> 'n')::int
        from pg_catalog.unnest(pgclaim_test.kept('ids')::bigint []) with ordinality as u (id, pos)
        inner join pgclaim.records as r on u.id = r.id
        order by u.pos
    $$,
    $$ values (1), (2), (3) $$,
    'the returned ids are in the order of the payloads'
);
select is(
    (
        select pg_catalog.count(*)::int from pgclaim.records as r
        where r.queue = 'eb'
    ), 3,
    'one record per payload'
);
select results_eq(
    $$
        select distinct r.status::text, r.priority, r.run_at, r.max_attempts, r.attempt
        from pgclaim.records as r where r.queue = 'eb'
    $$,
    $$ values ('pending', 0, '2030-01-01 00:00:00+00'::timestamptz, 3, 0) $$,
    'every record is pending, due now, with the queue''s max_attempts'
);

select pgclaim.enqueue_batch(
    'eb', array['{"late": 1}', '{"late": 2}']::jsonb[], priority => 4,
    run_at => '2030-01-02 00:00:00+00'
);
select results_eq(
    $$
        select distinct r.priority, r.run_at from pgclaim.records as r
        where r.queue = 'eb' and r.payload ? 'late'
    $$,
    $$ values (4, '2030-01-02 00:00:00+00'::timestamptz) $$,
    'priority and run_at apply to every record of the batch'
);

select is_empty(
    $$ select pgclaim.enqueue_batch('eb', '{}'::jsonb []) $$,
    'an empty array returns no id'
);
select is(
    (
        select pg_catalog.count(*)::int from pgclaim.records as r
        where r.queue = 'eb'
    ), 5,
    'and adds nothing'
);

select * from finish();
rollback;
