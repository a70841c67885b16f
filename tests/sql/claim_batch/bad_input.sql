-- claim_batch rejects bad input with its SQLSTATE and changes nothing (not even
-- the lease token sequence); batch_size 1 and 10000 are accepted.
begin;
select plan(24);

select pgclaim.create_queue('cb');
select pgclaim.enqueue('cb', '{}');

select pgclaim_test.rejects(
    $$ select pgclaim.claim_batch('cb', 'w1', 0) $$, '22023', 'batch_size 0'
);
select pgclaim_test.rejects(
    $$ select pgclaim.claim_batch('cb', 'w1', -1) $$, '22023', 'a negative batch_size'
);
select pgclaim_test.rejects(
    $$ select pgclaim.claim_batch('cb', 'w1', 10001) $$, '22023', 'batch_size 10001'
);
select pgclaim_test.rejects(
    $$ select pgclaim.claim_batch('cb', 'w1', null) $$, '22004', 'a null batch_size'
);
select pgclaim_test.rejects(
    $$ select pgclaim.claim_batch('cb', 'w1', lease => '0 seconds') $$, '22023', 'a zero lease'
);
select pgclaim_test.rejects(
    $$ select pgclaim.claim_batch('cb', 'w1', lease => '-5 minutes') $$, '22023',
    'a negative lease'
);
select pgclaim_test.rejects(
    $$ select pgclaim.claim_batch('cb', null) $$, '22004', 'a null worker_id'
);
select pgclaim_test.rejects(
    $$ select pgclaim.claim_batch('cb', '') $$, '22023', 'an empty worker_id'
);
select pgclaim_test.rejects(
    $$ select pgclaim.claim_batch('cb_missing', 'w1') $$, 'PC001', 'an unknown queue'
);
select pgclaim_test.rejects(
    $$ select pgclaim.claim_batch(null, 'w1') $$, '22004', 'a null queue name'
);
select pgclaim_test.rejects(
    $$ select pgclaim.claim_batch('c b', 'w1') $$, '22023', 'an invalid queue name'
);

select lives_ok(
    $$ select pgclaim.claim_batch('cb', 'w1', 10000) $$, 'batch_size 10000 is accepted'
);
select lives_ok(
    $$ select pgclaim.claim_batch('cb', 'w1', 1) $$, 'batch_size 1 is accepted'
);

select * from finish();
rollback;
