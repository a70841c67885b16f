-- max_running caps the queue's running records, whatever the batch sizes; a
-- completion frees a place; 0 removes the cap.
begin;
select plan(6);

select pgclaim_test.set_now('2030-01-01 00:00:00+00');
select pgclaim.create_queue('mr', max_running => 3);
select pgclaim.enqueue_batch('mr', array_fill('{}'::jsonb, array[10]));

select is(
    (select pg_catalog.count(*)::int from pgclaim.claim_batch('mr', 'w1', 2)), 2,
    'under the cap a claim takes what it asks for'
);
select is(
    (select pg_catalog.count(*)::int from pgclaim.claim_batch('mr', 'w2', 10)), 1,
    'a claim takes only the places left'
);
select is_empty($$ select from pgclaim.claim_batch('mr', 'w3', 10) $$, 'at the cap: nothing');
select pgclaim.complete('w2', array[r.id]) from pgclaim.records as r
where r.worker_id = 'w2';
select is(
    (select pg_catalog.count(*)::int from pgclaim.claim_batch('mr', 'w3', 10)), 1,
    'a completion frees one place'
);
select pgclaim.alter_queue('mr', max_running => 0);
select is(
    (select pg_catalog.count(*)::int from pgclaim.claim_batch('mr', 'w4', 10)), 6,
    'max_running 0 removes the cap'
);
select is_empty(
    $$ select from pgclaim.queue_flow as f where f.queue = 'mr' $$,
    'and the queue''s flow row with it'
);

select * from finish();
rollback;
