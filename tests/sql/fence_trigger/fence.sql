-- fence_trigger: an application table's rows carrying a record id and lease token
-- are written only while that claim holds (PC006 otherwise, nothing written);
-- misuse is refused with 22023.
begin;
select plan(13);

select pgclaim_test.set_now('2030-01-01 00:00:00+00');
select pgclaim.create_queue('fe', lease => '1 minute');
select pgclaim_test.keep('a', pgclaim.enqueue('fe', '{}'));

create temp table results (
    record_id bigint primary key, token bigint, result text
) on commit drop;
create trigger results_fence before insert or update or delete on results
for each row execute function pgclaim.fence_trigger('record_id', 'token');

select pgclaim_test.keep('t1', c.lease_token) from pgclaim.claim_batch('fe', 'w1') as c;
select lives_ok(
    pg_catalog.format(
        'insert into results values (%s, %s, %L)', pgclaim_test.id('a'), pgclaim_test.id('t1'),
        'first'
    ),
    'the holder''s insert lands'
);
select lives_ok(
    pg_catalog.format(
        'update results set result = %L where record_id = %s', 'first, again',
        pgclaim_test.id('a')
    ),
    'and so does its update'
);
select throws_ok(
    pg_catalog.format(
        'insert into results values (%s, %s, %L)', pgclaim_test.id('a') + 1000,
        pgclaim_test.id('t1'), 'x'
    ),
    'PC006', null, 'a token of another record is refused'
);

select pgclaim_test.advance('2 minutes');
select throws_ok(
    pg_catalog.format(
        'update results set result = %L where record_id = %s', 'stale', pgclaim_test.id('a')
    ),
    'PC006', null, 'once the lease ended the old holder''s update is refused'
);
select pgclaim_test.keep('t2', c.lease_token) from pgclaim.claim_batch('fe', 'w2') as c;
select throws_ok(
    pg_catalog.format(
        'delete from results where record_id = %s', pgclaim_test.id('a')
    ),
    'PC006', null, 'and so is a delete of a row carrying the old claim'
);
select lives_ok(
    pg_catalog.format(
        'update results set token = %s, result = %L where record_id = %s',
        pgclaim_test.id('t2'), 'second', pgclaim_test.id('a')
    ),
    'the new holder''s write lands'
);
select is(
    (select r.result from results as r), 'second', 'the table holds the new holder''s result'
);
select throws_ok(
    pg_catalog.format('insert into results values (%s, null, %L)', -1, 'x'),
    'PC006', null, 'a row without a token is refused'
);

create temp table wrong (record_id bigint, token bigint) on commit drop;
create trigger wrong_columns before insert on wrong
for each row execute function pgclaim.fence_trigger('record_id', 'lease_token');
select throws_ok(
    $$ insert into wrong values (1, 1) $$, '22023', null,
    'a column name the table does not have is refused'
);
create temp table wrong2 (record_id bigint, token bigint) on commit drop;
create trigger wrong_args before insert on wrong2
for each row execute function pgclaim.fence_trigger('record_id');
select throws_ok(
    $$ insert into wrong2 values (1, 1) $$, '22023', null,
    'one argument is refused'
);
create temp table wrong3 (record_id bigint, token bigint) on commit drop;
create trigger wrong_level before insert on wrong3
for each statement execute function pgclaim.fence_trigger('record_id', 'token');
select throws_ok(
    $$ insert into wrong3 values (1, 1) $$, '22023', null,
    'a statement trigger is refused'
);
select throws_ok(
    $$ select pgclaim.fence_trigger() $$, '0A000', null,
    'it cannot be called but as a trigger'
);
select is(pgclaim_test.status(pgclaim_test.id('a')), 'running', 'the record is left alone');

select * from finish();
rollback;
