-- With a dedup_window, a dedup_key stays taken for that long after its record
-- finished: enqueue returns the finished record's id; past the window, or
-- without a window, the key is free again.
begin;
select plan(8);

select pgclaim_test.set_now('2030-01-01 00:00:00+00');
select pgclaim.create_queue('dw', dedup_window => '10 minutes');
select pgclaim.create_queue('dw_none');
select pgclaim_test.keep('a', pgclaim.enqueue('dw', '{}', dedup_key => 'k'));
select pgclaim_test.keep('n', pgclaim.enqueue('dw_none', '{}', dedup_key => 'k'));
select pgclaim.complete('w1', array[c.id]) from pgclaim.claim_batch('dw', 'w1') as c;
select pgclaim.complete('w1', array[c.id]) from pgclaim.claim_batch('dw_none', 'w1') as c;

select pgclaim_test.advance('9 minutes');
select is(
    pgclaim.enqueue('dw', '{}', dedup_key => 'k'), pgclaim_test.id('a'),
    'within the window the finished record''s id comes back'
);
select results_eq(
    $$
        select i.id, i.created
        from pgclaim.enqueue_items('dw', '[{"payload": {}, "dedup_key": "k"}]') as i
    $$,
    $$ values (pgclaim_test.id('a'), false) $$,
    'enqueue_items says the id is an existing record''s'
);
select is_empty(
    $$ select from pgclaim.records as r where r.queue = 'dw' $$, 'and nothing was added'
);
select isnt(
    pgclaim.enqueue('dw_none', '{}', dedup_key => 'k'), pgclaim_test.id('n'),
    'without a window a finished record''s key is free'
);

select pgclaim_test.advance('2 minutes');
select pgclaim_test.keep('b', pgclaim.enqueue('dw', '{}', dedup_key => 'k'));
select isnt(pgclaim_test.id('b'), pgclaim_test.id('a'), 'past the window the key is free again');

-- A dead letter and a cancel keep the key too; the newest finished record counts.
select pgclaim.cancel(array[pgclaim_test.id('b')]);
select is(
    pgclaim.enqueue('dw', '{}', dedup_key => 'k'), pgclaim_test.id('b'),
    'a cancelled record keeps its key within the window'
);

-- A window set later covers the records that finished within it already.
select pgclaim.alter_queue('dw_none', dedup_window => '1 hour');
select is(
    pgclaim.enqueue('dw_none', '{}', dedup_key => 'late'),
    pgclaim.enqueue('dw_none', '{}', dedup_key => 'late'),
    'an unfinished key is refused as before'
);
select pgclaim.alter_queue('dw', dedup_window => '0');
select isnt(
    pgclaim.enqueue('dw', '{}', dedup_key => 'k'), pgclaim_test.id('b'),
    'dedup_window 0 removes the window'
);

select * from finish();
rollback;
