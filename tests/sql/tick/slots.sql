-- tick: each due slot enqueued once, the latest missed slot only (then the next
-- slot is past now), every-interval slots on their grid, the record's shape
-- (run_at at its slot, dedup_key naming the slot, the schedule's options).
begin;
select plan(20);

select pgclaim_test.set_now('2030-01-01 00:00:30+00');
select pgclaim.create_queue('tk');
select pgclaim.schedule(
    'five', 'tk', '{"job": "r"}', cron => '*/5 * * * *', priority => 7, max_attempts => 2
);
select pgclaim.schedule('half', 'tk', every => '30 seconds', group_key => 'g');

select is(pgclaim.tick(), 0, 'nothing due yet');
select pgclaim_test.advance('30 seconds');
select is(pgclaim.tick(), 1, '00:01:00: the every schedule''s first slot');
select is(pgclaim.tick(), 0, 'a second tick at the same time adds nothing');
select is(
    (
        select s.next_slot from pgclaim.schedules as s
        where s.name = 'half'
    ),
    '2030-01-01 00:01:30+00'::timestamptz, 'its next slot is one interval on'
);

-- Missed slots: nothing ran from 00:01 to 00:17:45.
select pgclaim_test.set_now('2030-01-01 00:17:45+00');
select is(pgclaim.tick(), 2, 'after a gap: one record per schedule');
select results_eq(
    $$ select coalesce(w.run_at, r.run_at), r.dedup_key, coalesce(w.priority, r.priority),
              r.max_attempts, r.group_key, r.payload
       from pgclaim.records as r left join pgclaim.waiting as w on w.id = r.id
       where r.queue = 'tk' order by r.id $$,
    $$ values
       ('2030-01-01 00:01:00+00'::timestamptz, 'schedule:half:2030-01-01T00:01:00Z', 0, 5,
        'g', '{}'::jsonb),
       ('2030-01-01 00:17:30+00', 'schedule:half:2030-01-01T00:17:30Z', 0, 5, 'g', '{}'),
       ('2030-01-01 00:15:00+00', 'schedule:five:2030-01-01T00:15:00Z', 7, 2, null,
        '{"job": "r"}') $$,
    'only the latest missed slot of each, due at its slot (a later record of a group waits '
    'behind its head), with the schedule''s options'
);
select results_eq(
    $$ select s.name, s.last_slot, s.next_slot from pgclaim.schedule_status as s
       order by s.name $$,
    $$ values
       ('five', '2030-01-01 00:15:00+00'::timestamptz, '2030-01-01 00:20:00+00'::timestamptz),
       ('half', '2030-01-01 00:17:30+00', '2030-01-01 00:18:00+00') $$,
    'last_slot is the slot enqueued; next_slot the first after now'
);
select is(
    (
        select s.last_id from pgclaim.schedules as s
        where s.name = 'five'
    ),
    (
        select r.id from pgclaim.records as r
        where r.dedup_key like 'schedule:five:%'
    ),
    'last_id is the record enqueued'
);
-- The every grid holds: 00:01:00 + k * 30 s.
select pgclaim_test.set_now('2030-01-01 00:18:10+00');
select is(pgclaim.tick(), 1, 'the 00:18:00 slot');
select is(
    (
        select pg_catalog.max(w.run_at) from pgclaim.waiting as w
        where w.group_key = 'g'
    ),
    '2030-01-01 00:18:00+00'::timestamptz, 'on the grid'
);
select is(
    (select pg_catalog.count(*)::integer from pgclaim.waiting), 2,
    'the group''s later records wait behind its head (the normal enqueue path)'
);

-- claim_batch ticks when a schedule is due, and hands out the new record.
select pgclaim_test.set_now('2030-01-01 00:20:00+00');
select is(
    (
        select pg_catalog.count(*)::integer from pgclaim.claim_batch('tk', 'w1', 10)
        where payload = '{"job": "r"}'
    ),
    2, 'the claim enqueued the 00:20 slot and handed it out with the 00:15 one'
);
select is(
    (
        select s.next_slot from pgclaim.schedules as s
        where s.name = 'five'
    ),
    '2030-01-01 00:25:00+00'::timestamptz, 'and moved the schedule on'
);

-- The safety net: a slot enqueued again while its record is unfinished returns it.
update pgclaim.schedules set next_slot = '2030-01-01 00:20:00+00'
where name = 'five';
select is(pgclaim.tick(), 0, 'a slot enqueued twice adds no record (dedup_key)');
select is(
    (
        select pg_catalog.count(*)::integer from pgclaim.records
        where dedup_key = 'schedule:five:2030-01-01T00:20:00Z'
    ),
    1, 'one record for the slot'
);

-- A schedule whose queue is gone enqueues nothing; its slots pass.
select pgclaim.create_queue('tk_gone');
select pgclaim.schedule('gone', 'tk_gone', every => '1 minute');
select pgclaim.drop_queue('tk_gone');
select pgclaim_test.advance('5 minutes');
select is(
    (
        select pg_catalog.count(*)::integer
        from pgclaim.records
        where queue = 'tk_gone'
    ), 0,
    'nothing for a dropped queue'
);
select lives_ok($$ select pgclaim.tick() $$, 'the tick goes on');
select is(
    (
        select s.next_slot from pgclaim.schedules as s
        where s.name = 'gone'
    ),
    '2030-01-01 00:26:00+00'::timestamptz, 'its slots pass'
);

-- Schedules in a zone: 09:00 in Paris is 08:00 UTC in winter.
select pgclaim.schedule('paris', 'tk', cron => '0 9 * * *', timezone => 'Europe/Paris');
select pgclaim_test.set_now('2030-01-02 08:00:00+00');
select pgclaim.tick();
select is(
    (
        select s.last_slot from pgclaim.schedules as s
        where s.name = 'paris'
    ),
    '2030-01-02 08:00:00+00'::timestamptz, '09:00 Paris time'
);
select is(
    (
        select s.next_slot from pgclaim.schedules as s
        where s.name = 'paris'
    ),
    '2030-01-03 08:00:00+00'::timestamptz, 'next: tomorrow'
);

select * from finish();
rollback;
