-- grant_queue / revoke_queue refuse bad input and change nothing.
begin;
select plan(16);

select pgclaim.create_queue('ge');

select pgclaim_test.rejects(
    $$ select pgclaim.grant_queue('nope', 'pgclaim_worker', array['claim']) $$, 'PC001',
    'an unknown queue'
);
select pgclaim_test.rejects(
    $$ select pgclaim.grant_queue('ge', 'no_such_role_x', array['claim']) $$, '42704',
    'an unknown role'
);
select pgclaim_test.rejects(
    $$ select pgclaim.grant_queue('ge', null, array['claim']) $$, '22004', 'a null role'
);
select pgclaim_test.rejects(
    $$ select pgclaim.grant_queue('ge', 'pgclaim_worker', null) $$, '22004', 'null privileges'
);
select pgclaim_test.rejects(
    $$ select pgclaim.grant_queue('ge', 'pgclaim_worker', array['claim', null]) $$, '22004',
    'a null privilege'
);
select pgclaim_test.rejects(
    $$ select pgclaim.grant_queue('ge', 'pgclaim_worker', array['delete']) $$, '22023',
    'an unknown privilege'
);
select pgclaim_test.rejects(
    $$ select pgclaim.grant_queue('ge', 'pgclaim_worker', '{}') $$, '22023', 'no privilege'
);
select pgclaim_test.rejects(
    $$ select pgclaim.revoke_queue('ge', 'no_such_role_x', array['claim']) $$, '42704',
    'revoke: an unknown role'
);

select * from finish();
rollback;
