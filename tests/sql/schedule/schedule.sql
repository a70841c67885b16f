-- schedule: creates and replaces schedules, their first slot, and refuses bad
-- input (22004/22023/PC001) changing nothing.
begin;
select plan(42);

select pgclaim_test.set_now('2030-01-01 00:00:30+00');
select pgclaim.create_queue('sch', max_attempts => 5, max_payload_bytes => 100);

select is(
    pgclaim.schedule('five', 'sch', '{"job": "report"}', cron => '*/5 * * * *'),
    '2030-01-01 00:05:00+00'::timestamptz,
    'a cron schedule: its first slot is the next of the expression'
);
select is(
    pgclaim.schedule('half', 'sch', every => '30 seconds'),
    '2030-01-01 00:01:00+00'::timestamptz,
    'an every schedule: its first slot is now + every'
);
select results_eq(
    $$ select s.name, s.queue, s.payload, s.priority, s.cron, s.every, s.timezone, s.last_slot,
              s.next_slot
       from pgclaim.schedule_status as s order by s.name $$,
    $$ values
       ('five', 'sch', '{"job": "report"}'::jsonb, 0, '*/5 * * * *', null::interval, 'UTC',
        null::timestamptz, '2030-01-01 00:05:00+00'::timestamptz),
       ('half', 'sch', '{}'::jsonb, 0, null, '00:00:30'::interval, 'UTC', null,
        '2030-01-01 00:01:00+00') $$,
    'schedule_status shows both, their default payload and zone'
);

select pgclaim_test.advance('2 minutes');
select is(
    pgclaim.schedule('five', 'sch', '{"job": "other"}', cron => '*/5 * * * *', priority => 3),
    '2030-01-01 00:05:00+00'::timestamptz,
    'replaced with the same timing: keeps its next slot'
);
select is(
    (
        select s.payload from pgclaim.schedules as s
        where s.name = 'five'
    ),
    '{"job": "other"}'::jsonb, 'replaced: the new payload'
);
select is(
    pgclaim.schedule('five', 'sch', cron => '0 * * * *'),
    '2030-01-01 01:00:00+00'::timestamptz,
    'replaced with a new expression: slots start again from now'
);
select is(
    pgclaim.schedule('five', 'sch', cron => '0 9 * * *', timezone => 'America/New_York'),
    '2030-01-01 14:00:00+00'::timestamptz,
    'a cron schedule in a zone: 09:00 in New York'
);
select is(
    pgclaim.schedule('half', 'sch', every => '1 day 2 hours'),
    '2030-01-02 02:02:30+00'::timestamptz,
    'a new every restarts from now'
);
select is(
    pgclaim.schedule('grp', 'sch', every => '1 minute', group_key => 'g', max_attempts => 2),
    '2030-01-01 00:03:30+00'::timestamptz, 'group_key and max_attempts are taken'
);

select pgclaim_test.rejects(
    $$ select pgclaim.schedule(null, 'sch', every => '1 minute') $$, '22004', 'a null name'
);
select pgclaim_test.rejects(
    $$ select pgclaim.schedule('', 'sch', every => '1 minute') $$, '22023', 'an empty name'
);
select pgclaim_test.rejects(
    $$ select pgclaim.schedule('x', 'sch_missing', every => '1 minute') $$, 'PC001',
    'an unknown queue'
);
select pgclaim_test.rejects(
    $$ select pgclaim.schedule('x', 'sch', null, every => '1 minute') $$, '22004',
    'a null payload'
);
select pgclaim_test.rejects(
    $$ select pgclaim.schedule('x', 'sch') $$, '22023', 'neither cron nor every'
);
select pgclaim_test.rejects(
    $$ select pgclaim.schedule('x', 'sch', cron => '* * * * *', every => '1 minute') $$,
    '22023', 'both cron and every'
);
select pgclaim_test.rejects(
    $$ select pgclaim.schedule('five', 'sch', cron => '0 0 * * 9') $$, '22023',
    'a bad day-of-week (an existing schedule stays as it was)'
);
select pgclaim_test.rejects(
    $$ select pgclaim.schedule('x', 'sch', every => '0.5 seconds') $$, '22023',
    'every under a second'
);
select pgclaim_test.rejects(
    $$ select pgclaim.schedule('x', 'sch', every => '1 month') $$, '22023', 'every in months'
);
select pgclaim_test.rejects(
    $$ select pgclaim.schedule('x', 'sch', every => '-1 minute') $$, '22023', 'a negative every'
);
select pgclaim_test.rejects(
    $$ select pgclaim.schedule('x', 'sch', every => '1 minute', timezone => 'Mars/Base') $$,
    '22023', 'an unknown timezone'
);
select pgclaim_test.rejects(
    $$ select pgclaim.schedule('x', 'sch', every => '1 minute', priority => 5000) $$,
    '22023', 'a priority outside the queue''s range'
);
select pgclaim_test.rejects(
    $$ select pgclaim.schedule('x', 'sch', every => '1 minute', priority => null) $$,
    '22004', 'a null priority'
);
select pgclaim_test.rejects(
    $$ select pgclaim.schedule('x', 'sch', every => '1 minute', max_attempts => 6) $$,
    '22023', 'max_attempts above the queue''s'
);
select pgclaim_test.rejects(
    $$ select pgclaim.schedule('x', 'sch', pg_catalog.jsonb_build_object(
        'big', pg_catalog.repeat('x', 200)), every => '1 minute') $$,
    '22023', 'a payload over max_payload_bytes'
);
select pgclaim_test.rejects(
    $$ select pgclaim.schedule('x', 'sch', every => '1 minute', group_key => '') $$,
    '22023', 'an empty group_key'
);
select throws_ok(
    $$ select pgclaim.schedule('x', 'sch', cron => '0 0 * * 9') $$, '22023',
    'pgclaim: invalid cron day-of-week field ''9'' (''9'' is not in 0..7)',
    'the message names the field and the value'
);

select * from finish();
rollback;
