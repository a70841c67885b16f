-- create_queue rejects bad names and settings with a SQLSTATE and changes nothing.
begin;
select plan(30);

select pgclaim_test.rejects(
    $$ select pgclaim.create_queue(null) $$, '22004', 'a null queue name'
);
select pgclaim_test.rejects(
    $$ select pgclaim.create_queue('') $$, '22023', 'an empty queue name'
);
select pgclaim_test.rejects(
    $$ select pgclaim.create_queue('has space') $$, '22023', 'a queue name with a space'
);
select pgclaim_test.rejects(
    $$ select pgclaim.create_queue('semi;colon') $$, '22023', 'a queue name with a semicolon'
);
select pgclaim_test.rejects(
    $$ select pgclaim.create_queue(pg_catalog.repeat('q', 49)) $$, '22023',
    'a queue name of 49 characters'
);
select pgclaim_test.rejects(
    $$ select pgclaim.create_queue('cq_bad', lease => null) $$, '22004', 'a null lease'
);
select pgclaim_test.rejects(
    $$ select pgclaim.create_queue('cq_bad', lease => '0 seconds') $$, '22023', 'a zero lease'
);
select pgclaim_test.rejects(
    $$ select pgclaim.create_queue('cq_bad', lease => '-1 second') $$, '22023',
    'a negative lease'
);
select pgclaim_test.rejects(
    $$ select pgclaim.create_queue('cq_bad', max_attempts => 0) $$, '22023', 'max_attempts 0'
);
select pgclaim_test.rejects(
    $$ select pgclaim.create_queue('cq_bad', max_attempts => null) $$, '22004',
    'a null max_attempts'
);
select pgclaim_test.rejects(
    $$ select pgclaim.create_queue('cq_bad', backoff_base => '0 seconds') $$, '22023',
    'a zero backoff_base'
);
select pgclaim_test.rejects(
    $$ select pgclaim.create_queue('cq_bad', backoff_max => '-1 minute') $$, '22023',
    'a negative backoff_max'
);
select pgclaim_test.rejects(
    $$ select pgclaim.create_queue('cq_bad', retention => '0 days') $$, '22023',
    'a zero retention'
);
select pgclaim_test.rejects(
    $$ select pgclaim.create_queue('cq_bad', retention => null) $$, '22004', 'a null retention'
);

select lives_ok(
    $$ select pgclaim.create_queue(pg_catalog.repeat('q', 48)) $$,
    'a queue name of 48 characters is accepted'
);
select lives_ok(
    $$ select pgclaim.create_queue('Aa0_.:-') $$,
    'a queue name may use letters, digits and _ . : -'
);

select * from finish();
rollback;
