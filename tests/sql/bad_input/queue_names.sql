-- Every function that takes a queue rejects a null (22004), empty or invalid
-- (22023) name and an unknown queue (PC001), and changes nothing.
begin;
select plan(94);

select pgclaim.create_queue('bq');
select pgclaim.enqueue('bq', '{}');

select
    pgclaim_test.rejects(
        pg_catalog.format(f.call, b.name), b.errcode,
        pg_catalog.format('%s with %s', f.fn, b.what)
    )
from (
    values
    ('alter_queue', $$ select pgclaim.alter_queue(%s, lease => '1 minute') $$),
    ('drop_queue', $$ select pgclaim.drop_queue(%s, true) $$),
    ('pause_queue', $$ select pgclaim.pause_queue(%s) $$),
    ('resume_queue', $$ select pgclaim.resume_queue(%s) $$),
    ('enqueue', $$ select pgclaim.enqueue(%s, '{}') $$),
    ('enqueue_batch', $$ select pgclaim.enqueue_batch(%s, array['{}']::jsonb []) $$),
    ('claim_batch', $$ select pgclaim.claim_batch(%s, 'w1') $$),
    ('retry_failed', $$ select pgclaim.retry_failed(%s) $$),
    ('purge', $$ select pgclaim.purge(%s, '0 seconds') $$)
) as f (fn, call)
cross join (
    values
    ('null', '22004', 'a null queue'),
    ('''''', '22023', 'an empty queue'),
    ('''bq''''; drop table x''', '22023', 'an invalid queue name'),
    ('''bq/x''', '22023', 'a queue name with a slash'),
    ('''bq_unknown''', 'PC001', 'an unknown queue')
) as b (name, errcode, what)
order by f.fn, b.what;

select pgclaim_test.rejects(
    $$ select pgclaim.create_queue('bq x') $$, '22023', 'create_queue with an invalid name'
);
select pgclaim_test.rejects(
    $$ select pgclaim.create_queue(e'bq\n') $$, '22023', 'create_queue with a newline in the name'
);

select * from finish();
rollback;
