-- The limits of claim_batch and the reports: the queue's max_lease and max_batch,
-- durations positive in every field, no null inside ids or lease_tokens, the
-- number of ids, worker info size. Each refusal changes nothing.
begin;
select plan(33);

select pgclaim.create_queue('lc', lease => '1 minute', max_lease => '1 hour', max_batch => 5);
select pgclaim.enqueue_batch('lc', array['{}', '{}', '{}']::jsonb[]);

select pgclaim_test.rejects(
    $$ select pgclaim.claim_batch('lc', 'w1', 1, lease => '100 years') $$, '22023',
    'a lease of 100 years'
);
select pgclaim_test.rejects(
    $$ select pgclaim.claim_batch('lc', 'w1', 1, lease => '61 minutes') $$, '22023',
    'a lease over the queue''s max_lease'
);
select pgclaim_test.rejects(
    $$ select pgclaim.claim_batch('lc', 'w1', 1, lease => '1 mon -30 days 1 second') $$, '22023',
    'a lease negative in one of its fields'
);
select pgclaim_test.rejects(
    $$ select pgclaim.claim_batch('lc', 'w1', 6) $$, '22023', 'a batch_size over max_batch'
);
create temp table c on commit drop as
select * from pgclaim.claim_batch('lc', 'w1', 2, lease => '1 hour');
select is((select pg_catalog.count(*)::int from c), 2, 'a lease of max_lease is taken');

select pgclaim_test.rejects(
    $$ select pgclaim.extend_lease('w1', array(select c.id from c), lease => '2 hours') $$,
    '22023', 'extending a lease past the queue''s max_lease'
);
select pgclaim_test.rejects(
    $$
        select pgclaim.complete(
            'w1', array(select c.id from c), array[(select min(c.lease_token) from c), null]
        )
    $$,
    '22004', 'a null inside lease_tokens (it would turn fencing off for its id)'
);
select pgclaim_test.rejects(
    $$ select pgclaim.complete('w1', array[(select min(c.id) from c), null]) $$, '22004',
    'a null inside ids'
);
select pgclaim_test.rejects(
    $$ select pgclaim.release('w1', array[null]::bigint []) $$, '22004', 'release: a null id'
);
select pgclaim_test.rejects(
    $$ select pgclaim.heartbeat('w1', array[null]::bigint []) $$, '22004', 'heartbeat: a null id'
);
select pgclaim_test.rejects(
    $$ select pgclaim.cancel(array[null]::bigint []) $$, '22004', 'cancel: a null id'
);
select pgclaim_test.rejects(
    $$ select pgclaim.retry_failed('lc', array[null]::bigint []) $$, '22004',
    'retry_failed: a null id'
);
select pgclaim.configure(max_ids => 3);
select pgclaim_test.rejects(
    $$ select pgclaim.complete('w1', array[1, 2, 3, 4]::bigint []) $$, '22023',
    'more ids than max_ids'
);
select pgclaim.configure(max_info_bytes => 100);
select pgclaim_test.rejects(
    pg_catalog.format(
        'select pgclaim.register_worker(%L, %L::jsonb)', 'w9',
        pg_catalog.json_build_object('x', pg_catalog.repeat('y', 200))
    ),
    '22023', 'worker info over max_info_bytes'
);
select pgclaim_test.rejects(
    pg_catalog.format('select pgclaim.register_worker(%L)', pg_catalog.repeat('é', 101)),
    '22023', 'a worker_id over 200 bytes'
);
select pgclaim_test.rejects(
    $$
        select pgclaim.fail('w1', (select min(c.id) from c), 'x', retry_after => '1 mon -40 days')
    $$,
    '22023', 'a retry_after negative in one of its fields'
);
select pgclaim_test.rejects(
    $$ select pgclaim.purge('lc', older_than => '-1 day') $$, '22023', 'a negative older_than'
);

select * from finish();
rollback;
