-- next_eligible: when a claim can next hand something out (due time, token
-- bucket), or null (nothing pending, paused, at max_running).
begin;
select plan(8);

select pgclaim_test.set_now('2030-01-01 00:00:00+00');
select pgclaim.create_queue('ne', rate => 1, burst => 1);
select is(pgclaim.next_eligible('ne'), null, 'nothing pending: null');
select pgclaim.enqueue('ne', '{}', run_at => '2030-01-01 00:10:00+00');
select is(
    pgclaim.next_eligible('ne'), '2030-01-01 00:10:00+00'::timestamptz,
    'the earliest due time'
);
select pgclaim.enqueue('ne', '{}');
select pgclaim.enqueue('ne', '{}');
select is(pgclaim.next_eligible('ne'), pgclaim._now(), 'due now with a token: now');
select pgclaim.claim_batch('ne', 'w1', 10);
select is(
    pgclaim.next_eligible('ne'), '2030-01-01 00:00:01+00'::timestamptz,
    'the bucket is empty: when the next token comes'
);
select pgclaim.alter_queue('ne', max_running => 1);
select is(pgclaim.next_eligible('ne'), null, 'at max_running: null');
select pgclaim.pause_queue('ne');
select is(pgclaim.next_eligible('ne'), null, 'paused: null');
select pgclaim_test.rejects(
    $$ select pgclaim.next_eligible('ne_missing') $$, 'PC001', 'an unknown queue'
);

select * from finish();
rollback;
