-- A group has its row in pgclaim.groups exactly while it has an unfinished
-- record; records waiting behind the head are in pgclaim.waiting with their own
-- due time, which a cancelled one keeps in pgclaim.finished; drop_queue forgets both.
begin;
select plan(6);

select pgclaim_test.set_now('2030-01-01 00:00:00+00');
select pgclaim.create_queue('gk');
select pgclaim_test.keep('h', pgclaim.enqueue('gk', '{}', group_key => 'g'));
select pgclaim_test.keep(
    'w', pgclaim.enqueue('gk', '{}', run_at => '2030-01-01 00:05:00+00', group_key => 'g')
);
select results_eq(
    $$ select w.id, w.run_at from pgclaim.waiting as w $$,
    $$ values (pgclaim_test.id('w'), '2030-01-01 00:05:00+00'::timestamptz) $$,
    'the record behind the head waits with its own due time'
);
select pgclaim.cancel(array[pgclaim_test.id('w')]);
select results_eq(
    $$ select f.run_at from pgclaim.finished as f where f.id = pgclaim_test.id('w') $$,
    $$ values ('2030-01-01 00:05:00+00'::timestamptz) $$,
    'a cancelled waiting record keeps its due time'
);
select is_empty($$ select from pgclaim.waiting $$, 'and leaves pgclaim.waiting');
select isnt_empty($$ select from pgclaim.groups $$, 'the group is there while its head is');
select pgclaim.complete('w1', array[c.id]) from pgclaim.claim_batch('gk', 'w1') as c;
select is_empty($$ select from pgclaim.groups $$, 'the group goes with its last record');

select pgclaim.enqueue('gk', '{}', group_key => 'g');
select pgclaim.enqueue('gk', '{}', group_key => 'g');
select pgclaim.drop_queue('gk', force => true);
select is_empty(
    $$ select from pgclaim.groups union all select from pgclaim.waiting $$,
    'drop_queue forgets the queue''s groups'
);

select * from finish();
rollback;
