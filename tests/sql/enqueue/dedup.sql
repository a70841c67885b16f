-- enqueue with a dedup_key returns the unfinished record's id and adds nothing;
-- once that record is finished, the key gives a new record.
begin;
select plan(9);

select pgclaim.create_queue('dd');
select pgclaim.create_queue('dd_other');

select pgclaim_test.keep('a', pgclaim.enqueue('dd', '{"v": 1}', dedup_key => 'k1'));
select is(
    pgclaim.enqueue('dd', '{"v": 2}', dedup_key => 'k1'), pgclaim_test.id('a'),
    'the same dedup_key returns the pending record''s id'
);
select results_eq(
    $$ select r.id, r.payload from pgclaim_test.all_records as r where r.queue = 'dd' $$,
    $$ values (pgclaim_test.id('a'), '{"v": 1}'::jsonb) $$,
    'nothing was added and the first payload is kept'
);

select pgclaim.claim_batch('dd', 'w1');
select is(
    pgclaim.enqueue('dd', '{}', dedup_key => 'k1'), pgclaim_test.id('a'),
    'the same dedup_key returns the running record''s id'
);

select pgclaim.complete('w1', array[pgclaim_test.id('a')]);
select pgclaim_test.keep('b', pgclaim.enqueue('dd', '{}', dedup_key => 'k1'));
select isnt(
    pgclaim_test.id('b'), pgclaim_test.id('a'),
    'after completion the key adds a new record'
);
select is(
    (
        select pg_catalog.count(*)::int from pgclaim_test.all_records as r
        where r.queue = 'dd'
    ), 2,
    'the queue now holds two records'
);
select isnt(
    pgclaim.enqueue('dd_other', '{}', dedup_key => 'k1'), pgclaim_test.id('b'),
    'the same key in another queue is another record'
);

select pgclaim.cancel(array[pgclaim_test.id('b')]);
select isnt(
    pgclaim.enqueue('dd', '{}', dedup_key => 'k1'), pgclaim_test.id('b'),
    'after cancellation the key adds a new record'
);

select pgclaim_test.rejects(
    $$ select pgclaim.enqueue('dd', '{}', dedup_key => '') $$, '22023', 'an empty dedup_key'
);

select * from finish();
rollback;
