-- fail: PC002 for a record that does not exist, PC003 for anyone but the holder
-- under its current lease_token, 22004/22023 for bad input; nothing changes.
begin;
select plan(18);

select pgclaim.create_queue('fe');
select pgclaim_test.keep('a', pgclaim.enqueue('fe', '{}', priority => 2));
select pgclaim_test.keep('done', pgclaim.enqueue('fe', '{}', priority => 1));
select pgclaim_test.keep('pending', pgclaim.enqueue('fe', '{}'));
select pgclaim_test.keep(
    'token', (select c.lease_token from pgclaim.claim_batch('fe', 'w1', 1) as c)
);
select pgclaim.claim_batch('fe', 'w9', 1);
select pgclaim.complete('w9', array[pgclaim_test.id('done')]);

select pgclaim_test.rejects(
    $$ select pgclaim.fail('w1', -42, 'x') $$, 'PC002', 'a record that does not exist'
);
select pgclaim_test.rejects(
    format($$ select pgclaim.fail('w2', %s, 'x') $$, pgclaim_test.id('a')), 'PC003',
    'a worker that does not hold the record'
);
select pgclaim_test.rejects(
    format(
        $$ select pgclaim.fail('w1', %s, 'x', lease_token => %s) $$,
        pgclaim_test.id('a'), pgclaim_test.id('token') - 1
    ),
    'PC003', 'the holder under a stale lease_token'
);
select pgclaim_test.rejects(
    format($$ select pgclaim.fail('w1', %s, 'x') $$, pgclaim_test.id('pending')), 'PC003',
    'a pending record'
);
select pgclaim_test.rejects(
    format($$ select pgclaim.fail('w9', %s, 'x') $$, pgclaim_test.id('done')), 'PC003',
    'a completed record, by its last holder'
);
select pgclaim_test.rejects(
    format($$ select pgclaim.fail(null, %s, 'x') $$, pgclaim_test.id('a')), '22004',
    'a null worker_id'
);
select pgclaim_test.rejects(
    format($$ select pgclaim.fail('', %s, 'x') $$, pgclaim_test.id('a')), '22023',
    'an empty worker_id'
);
select pgclaim_test.rejects(
    $$ select pgclaim.fail('w1', null, 'x') $$, '22004', 'a null id'
);
select pgclaim_test.rejects(
    format(
        $$ select pgclaim.fail('w1', %s, 'x', retry_after => '-1 second') $$, pgclaim_test.id('a')
    ),
    '22023', 'a negative retry_after'
);

select * from finish();
rollback;
