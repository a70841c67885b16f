-- enqueue rejects bad input with its SQLSTATE and changes nothing.
begin;
select plan(22);

select pgclaim.create_queue('ee');

select pgclaim_test.rejects(
    $$ select pgclaim.enqueue('ee_missing', '{}') $$, 'PC001', 'an unknown queue'
);
select pgclaim_test.rejects(
    $$ select pgclaim.enqueue(null, '{}') $$, '22004', 'a null queue name'
);
select pgclaim_test.rejects(
    $$ select pgclaim.enqueue('', '{}') $$, '22023', 'an empty queue name'
);
select pgclaim_test.rejects(
    $$ select pgclaim.enqueue('e e', '{}') $$, '22023', 'an invalid queue name'
);
select pgclaim_test.rejects(
    $$ select pgclaim.enqueue('ee', null) $$, '22004', 'a null payload'
);
select pgclaim_test.rejects(
    $$ select pgclaim.enqueue('ee', '{}', priority => null) $$, '22004', 'a null priority'
);
select pgclaim_test.rejects(
    $$ select pgclaim.enqueue('ee', '{}', max_attempts => 0) $$, '22023', 'max_attempts 0'
);
select pgclaim_test.rejects(
    $$ select pgclaim.enqueue('ee', '{}', max_attempts => -1) $$, '22023', 'negative max_attempts'
);
select pgclaim_test.rejects(
    $$ select pgclaim.enqueue('ee', '{}', dedup_key => '') $$, '22023', 'an empty dedup_key'
);
select pgclaim_test.rejects(
    $$ select pgclaim.enqueue('ee', '{}', dedup_key => e'a\nb') $$, '22023',
    'a dedup_key with a control character'
);
select throws_ok(
    $$ select pgclaim.enqueue('ee', null) $$, '22004',
    'pgclaim: payload must not be null (queue ''ee'')',
    'the message names the queue of the null payload'
);
select throws_ok(
    $$ select pgclaim.enqueue('e e', '{}') $$, '22023', 'pgclaim: invalid queue name ''e e''',
    'the message names the bad queue name'
);

select * from finish();
rollback;
