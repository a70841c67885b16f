-- unschedule: removes a schedule (its records stay), says whether it existed;
-- a null name is refused.
begin;
select plan(8);

select pgclaim_test.set_now('2030-01-01 00:00:00+00');
select pgclaim.create_queue('uns');
select pgclaim.schedule('u', 'uns', every => '1 minute');
select pgclaim_test.advance('1 minute');
select is(pgclaim.tick(), 1, 'the schedule enqueues its slot');
select ok(pgclaim.unschedule('u'), 'an existing schedule: true');
select is(
    (select pg_catalog.count(*)::integer from pgclaim.schedule_status), 0, 'it is gone'
);
select pgclaim_test.advance('10 minutes');
select is(pgclaim.tick(), 0, 'nothing more is enqueued');
select is(
    (
        select pg_catalog.count(*)::integer from pgclaim.records
        where queue = 'uns'
    ), 1,
    'its record stays'
);
select ok(not pgclaim.unschedule('u'), 'an unknown schedule: false');
select pgclaim_test.rejects($$ select pgclaim.unschedule(null) $$, '22004', 'a null name');

select * from finish();
rollback;
