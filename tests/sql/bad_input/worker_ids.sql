-- Every function that takes a worker_id rejects a null one (22004) and an
-- empty, over-long or non-printable one (22023), and changes nothing.
begin;
select plan(64);

select pgclaim.create_queue('bw');
select pgclaim.enqueue('bw', '{}');
select pgclaim.register_worker('w1');
select pgclaim.claim_batch('bw', 'w1');

select
    pgclaim_test.rejects(
        pg_catalog.format(f.call, b.worker_id), b.errcode,
        pg_catalog.format('%s with %s', f.fn, b.what)
    )
from (
    values
    ('claim_batch', $$ select pgclaim.claim_batch('bw', %s) $$),
    ('complete', $$ select pgclaim.complete(%s, array[1::bigint]) $$),
    ('fail', $$ select pgclaim.fail(%s, 1, 'x') $$),
    ('extend_lease', $$ select pgclaim.extend_lease(%s, array[1::bigint]) $$),
    ('release', $$ select pgclaim.release(%s, array[1::bigint]) $$),
    ('register_worker', $$ select pgclaim.register_worker(%s) $$),
    ('heartbeat', $$ select pgclaim.heartbeat(%s) $$),
    ('deregister_worker', $$ select pgclaim.deregister_worker(%s) $$)
) as f (fn, call)
cross join (
    values
    ('null', '22004', 'a null worker_id'),
    ('''''', '22023', 'an empty worker_id'),
    ('pg_catalog.repeat(''w'', 201)', '22023', 'a worker_id of 201 characters'),
    ('e''w\x01''', '22023', 'a worker_id with a control character')
) as b (worker_id, errcode, what)
order by f.fn, b.what;

select * from finish();
rollback;
