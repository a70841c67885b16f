-- The limits of enqueue and enqueue_batch, per queue: payload size, priority range,
-- attempts no higher than the queue allows, a finite run_at, the batch length, a
-- dedup_key that fits its index. Each refusal changes nothing.
begin;
select plan(29);

select pgclaim.create_queue(
    'lim', max_payload_bytes => 1024, min_priority => -5, max_priority => 5,
    max_attempts => 3, max_batch => 3
);

select lives_ok(
    pg_catalog.format(
        'select pgclaim.enqueue(%L, %L::jsonb)', 'lim',
        pg_catalog.json_build_object('p', pg_catalog.repeat('x', 900))
    ),
    'a payload under max_payload_bytes is taken'
);
select pgclaim_test.rejects(
    pg_catalog.format(
        'select pgclaim.enqueue(%L, %L::jsonb)', 'lim',
        pg_catalog.json_build_object('p', pg_catalog.repeat('x', 1100))
    ),
    '22023', 'a payload over max_payload_bytes'
);
select pgclaim_test.rejects(
    pg_catalog.format(
        'select pgclaim.enqueue_batch(%L, array[%L, %L]::jsonb [])', 'lim', '{}',
        pg_catalog.json_build_object('p', pg_catalog.repeat('x', 1100))
    ),
    '22023', 'a payload of a batch over max_payload_bytes'
);
select throws_like(
    pg_catalog.format(
        'select pgclaim.enqueue_batch(%L, array[%L, %L]::jsonb [])', 'lim', '{}',
        pg_catalog.json_build_object('p', pg_catalog.repeat('x', 1100))
    ),
    '%payloads[2]%', 'the message names the payload by its position'
);
select pgclaim_test.rejects(
    $$ select pgclaim.enqueue('lim', '{}', priority => 6) $$, '22023', 'a priority above the range'
);
select pgclaim_test.rejects(
    $$ select pgclaim.enqueue('lim', '{}', priority => -6) $$, '22023', 'a priority below the range'
);
select pgclaim_test.rejects(
    $$ select pgclaim.enqueue_batch('lim', array['{}']::jsonb [], priority => 2147483647) $$,
    '22023', 'a batch priority above the range'
);
select lives_ok(
    $$ select pgclaim.enqueue('lim', '{}', priority => 5, max_attempts => 2) $$,
    'the bounds themselves, and fewer attempts than the queue''s, are taken'
);
select pgclaim_test.rejects(
    $$ select pgclaim.enqueue('lim', '{}', max_attempts => 4) $$, '22023',
    'more attempts than the queue allows'
);
select pgclaim_test.rejects(
    $$ select pgclaim.enqueue('lim', '{}', run_at => '-infinity') $$, '22023', 'run_at -infinity'
);
select pgclaim_test.rejects(
    $$ select pgclaim.enqueue('lim', '{}', run_at => 'infinity') $$, '22023', 'run_at infinity'
);
select pgclaim_test.rejects(
    $$ select pgclaim.enqueue_batch('lim', array['{}']::jsonb [], run_at => '-infinity') $$,
    '22023', 'a batch run_at -infinity'
);
select pgclaim_test.rejects(
    $$ select pgclaim.enqueue_batch('lim', array['{}', '{}', '{}', '{}']::jsonb []) $$, '22023',
    'more payloads than max_batch'
);
select pgclaim_test.rejects(
    pg_catalog.format(
        'select pgclaim.enqueue(%L, %L, dedup_key => %L)', 'lim', '{}', pg_catalog.repeat('😀', 1000)
    ),
    '22023', 'a dedup_key of 1000 four-byte characters (not 54000 from the index)'
);
select lives_ok(
    pg_catalog.format(
        'select pgclaim.enqueue(%L, %L, dedup_key => %L)', 'lim', '{}', pg_catalog.repeat('😀', 128)
    ),
    'a dedup_key of 512 bytes fits'
);
select pgclaim_test.rejects(
    pg_catalog.format('select pgclaim.enqueue(%L, %L)', pg_catalog.repeat('q', 100000), '{}'),
    '22023', 'a huge queue name'
);
select throws_like(
    pg_catalog.format('select pgclaim.enqueue(%L, %L)', pg_catalog.repeat('q', 100000), '{}'),
    'pgclaim: invalid queue name ''qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq''...',
    'the message shows the bad value cut to 40 characters'
);

select * from finish();
rollback;
