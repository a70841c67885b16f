-- enqueue_items: one record per item with its own options, (id, created) in input
-- order, dedup per item (within the call too), groups per item.
begin;
select plan(7);

select pgclaim_test.set_now('2030-01-01 00:00:00+00');
select pgclaim.create_queue('ei', max_attempts => 5);
select pgclaim_test.keep('old', pgclaim.enqueue('ei', '{"old": 1}', dedup_key => 'd1'));

create temporary table got as
select
    i.*,
    pg_catalog.row_number() over () as n
from pgclaim.enqueue_items('ei', $$[
    {"payload": {"i": 1}},
    {"payload": {"i": 2}, "priority": 7, "max_attempts": 2},
    {"payload": {"i": 3}, "dedup_key": "d1"},
    {"payload": {"i": 4}, "run_at": "2030-01-01T01:00:00Z", "group_key": "g"},
    {"payload": {"i": 5}, "group_key": "g"},
    {"payload": {"i": 6}, "dedup_key": "d2"},
    {"payload": {"i": 7}, "dedup_key": "d2"}
]$$) as i;

select results_eq(
    $$ select g.created from got as g order by g.n $$,
    $$ values (true), (true), (false), (true), (true), (true), (false) $$,
    'created says which items added a record'
);
select is(
    (
        select g.id from got as g
        where g.n = 3
    ), pgclaim_test.id('old'
    ),
    'an item whose dedup_key an unfinished record holds gets that record''s id'
);
select is(
    (
        select g.id from got as g
        where g.n = 7), (
        select g.id from got as g
        where g.n = 6
    ),
    'an item whose dedup_key an earlier item took gets that item''s id'
);
select results_eq(
    $$
        select r.payload ->> 'i', r.priority, r.max_attempts
        from got as g inner join pgclaim.records as r on g.id = r.id
        where g.n in (1, 2) order by g.n
    $$,
    $$ values ('1', 0, 5), ('2', 7, 2) $$,
    'each item has its own priority and max_attempts'
);
select is(
    pgclaim_test.waits((
        select g.id from got as g
        where g.n = 5
    )), true,
    'an item of a group waits behind the group''s head'
);
select results_eq(
    $$
        select w.run_at from pgclaim.records as w inner join got as g on w.id = g.id
        where g.n = 4
    $$,
    $$ values ('2030-01-01 01:00:00+00'::timestamptz) $$,
    'an item''s run_at is kept'
);
select is_empty(
    $$ select from pgclaim.enqueue_items('ei', '[]') $$, 'no items, no records'
);

select * from finish();
rollback;
