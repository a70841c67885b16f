-- group_key is checked as dedup_key is: not empty, printable, at most 512 bytes.
begin;
select plan(4);

select pgclaim.create_queue('gb');
select pgclaim_test.rejects(
    $$ select pgclaim.enqueue('gb', '{}', group_key => '') $$, '22023', 'an empty group_key'
);
select pgclaim_test.rejects(
    $$ select pgclaim.enqueue('gb', '{}', group_key => pg_catalog.repeat('g', 513)) $$, '22023',
    'a group_key over 512 bytes'
);

select * from finish();
rollback;
