-- The cron parser (_cron_slot, _cron_field): the next slot after a time and the
-- last at or before it, for lists, ranges, steps, names, aliases, the
-- day-of-month/day-of-week rule, leap days, time zones and daylight saving;
-- malformed expressions raise 22023 naming the field.
begin;
select plan(17);

create temporary table cases (
    cron text, tz text, t timestamptz, next_slot timestamptz, prev_slot timestamptz
) on commit drop;

insert into cases values
('*/5 * * * *', 'UTC', '2030-01-01 00:03:10+00', '2030-01-01 00:05+00', '2030-01-01 00:00+00'),
('*/5 * * * *', 'UTC', '2030-01-01 00:05:00+00', '2030-01-01 00:10+00', '2030-01-01 00:05+00'),
('* * * * *', 'UTC', '2030-01-01 00:00:59+00', '2030-01-01 00:01+00', '2030-01-01 00:00+00'),
('0 * * * *', 'UTC', '2030-01-01 23:30+00', '2030-01-02 00:00+00', '2030-01-01 23:00+00'),
('1-10/2 * * * *', 'UTC', '2030-01-02 00:09+00', '2030-01-02 01:01+00', '2030-01-02 00:09+00'),
('5/20 * * * *', 'UTC', '2030-01-02 00:46+00', '2030-01-02 01:05+00', '2030-01-02 00:45+00'),
('15,45 8-9 * * *', 'UTC', '2030-01-02 09:50+00', '2030-01-03 08:15+00', '2030-01-02 09:45+00'),
('0 9 * * mon-fri', 'UTC', '2030-01-04 10:00+00', '2030-01-07 09:00+00', '2030-01-04 09:00+00'),
('0 9 * * 1-5', 'UTC', '2030-01-06 10:00+00', '2030-01-07 09:00+00', '2030-01-04 09:00+00'),
('0 0 * * 7', 'UTC', '2030-01-01 00:00+00', '2030-01-06 00:00+00', '2029-12-30 00:00+00'),
('0 0 * * SUN', 'UTC', '2030-01-01 00:00+00', '2030-01-06 00:00+00', '2029-12-30 00:00+00'),
-- Both day fields restricted: either matches (the 1st, the 15th, or a Monday).
('0 0 1,15 * mon', 'UTC', '2030-01-02 00:00+00', '2030-01-07 00:00+00', '2030-01-01 00:00+00'),
-- Day-of-month starting with '*': both must match (odd days that are Tuesdays; not the 8th).
('0 0 */2 * tue', 'UTC', '2030-01-02 00:00+00', '2030-01-15 00:00+00', '2030-01-01 00:00+00'),
('0 12 31 * *', 'UTC', '2030-02-01 00:00+00', '2030-03-31 12:00+00', '2030-01-31 12:00+00'),
('0 0 29 2 *', 'UTC', '2030-01-04 10:00+00', '2032-02-29 00:00+00', '2028-02-29 00:00+00'),
('30 4 1 jan,jul *', 'UTC', '2030-03-01 00:00+00', '2030-07-01 04:30+00', '2030-01-01 04:30+00'),
('@hourly', 'UTC', '2030-01-02 00:09+00', '2030-01-02 01:00+00', '2030-01-02 00:00+00'),
('@daily', 'UTC', '2030-01-02 00:09+00', '2030-01-03 00:00+00', '2030-01-02 00:00+00'),
('@weekly', 'UTC', '2030-01-02 00:09+00', '2030-01-06 00:00+00', '2029-12-30 00:00+00'),
('@monthly', 'UTC', '2030-01-02 00:09+00', '2030-02-01 00:00+00', '2030-01-01 00:00+00'),
('@yearly', 'UTC', '2030-01-02 00:09+00', '2031-01-01 00:00+00', '2030-01-01 00:00+00'),
('  0   6 * * *  ', 'UTC', '2030-01-02 07:00+00', '2030-01-03 06:00+00', '2030-01-02 06:00+00'),
-- Wall-clock time in the schedule's zone.
('0 9 * * *', 'Europe/Paris', '2030-01-02 09:00+00', '2030-01-03 08:00+00', '2030-01-02 08:00+00'),
('0 9 * * *', 'Europe/Paris', '2030-07-02 09:00+00', '2030-07-03 07:00+00', '2030-07-02 07:00+00'),
-- 02:30 does not exist on 2030-03-31 in Berlin: it runs an hour on (03:30 CEST).
(
    '30 2 * * *', 'Europe/Berlin', '2030-03-30 12:00+00', '2030-03-31 01:30+00',
    '2030-03-30 01:30+00'
);

select results_eq(
    $$ select pgclaim._cron_slot(c.cron, c.tz, c.t, true) from cases as c
       order by c.cron, c.tz, c.t $$,
    $$ select c.next_slot from cases as c order by c.cron, c.tz, c.t $$,
    'the first slot strictly after t, for every case'
);

select results_eq(
    $$ select pgclaim._cron_slot(c.cron, c.tz, c.t, false) from cases as c
       order by c.cron, c.tz, c.t $$,
    $$ select c.prev_slot from cases as c order by c.cron, c.tz, c.t $$,
    'the last slot at or before t, for every case'
);

select is(
    (
        select pg_catalog.count(distinct s)::integer from pg_catalog.generate_series(
            '2030-01-01 00:00+00'::timestamptz, '2030-01-01 02:00+00', '7 minutes'
        ) as g (t),
            lateral pgclaim._cron_slot('*/5 * * * *', 'UTC', g.t, true) as s
        where s - g.t > '0'::interval and s - g.t <= '5 minutes'::interval
    ),
    18,
    'every next slot of */5 lies within five minutes after t'
);

select is(
    pgclaim._cron_slot('0 0 1 1 *', 'UTC', null, true), null,
    'with t null, only the expression is checked'
);

select throws_ok(
    $$ select pgclaim._cron_slot('* * * *', 'UTC', now(), true) $$, '22023',
    'pgclaim: invalid cron expression ''* * * *'': it needs 5 fields',
    'four fields'
);
select throws_ok(
    $$ select pgclaim._cron_slot('', 'UTC', now(), true) $$, '22023',
    'pgclaim: invalid cron expression '''': it needs 5 fields', 'empty'
);
select throws_ok(
    $$ select pgclaim._cron_slot('@often', 'UTC', now(), true) $$, '22023',
    'pgclaim: invalid cron expression ''@often'': it needs 5 fields', 'an unknown alias'
);
select throws_ok(
    $$ select pgclaim._cron_slot('60 * * * *', 'UTC', now(), true) $$, '22023',
    'pgclaim: invalid cron minute field ''60'' (''60'' is not in 0..59)', 'minute 60'
);
select throws_ok(
    $$ select pgclaim._cron_slot('0 24 * * *', 'UTC', now(), true) $$, '22023',
    'pgclaim: invalid cron hour field ''24'' (''24'' is not in 0..23)', 'hour 24'
);
select throws_ok(
    $$ select pgclaim._cron_slot('0 0 0 * *', 'UTC', now(), true) $$, '22023',
    'pgclaim: invalid cron day-of-month field ''0'' (''0'' is not in 1..31)', 'day 0'
);
select throws_ok(
    $$ select pgclaim._cron_slot('0 0 * foo *', 'UTC', now(), true) $$, '22023',
    'pgclaim: invalid cron month field ''foo'' (''foo'' is not in 1..12)', 'an unknown month'
);
select throws_ok(
    $$ select pgclaim._cron_slot('0 0 * * 8', 'UTC', now(), true) $$, '22023',
    'pgclaim: invalid cron day-of-week field ''8'' (''8'' is not in 0..7)', 'day of week 8'
);
select throws_ok(
    $$ select pgclaim._cron_slot('10-5 * * * *', 'UTC', now(), true) $$, '22023',
    'pgclaim: invalid cron minute field ''10-5'' (item ''10-5'')', 'a backwards range'
);
select throws_ok(
    $$ select pgclaim._cron_slot('*/0 * * * *', 'UTC', now(), true) $$, '22023',
    'pgclaim: invalid cron minute field ''*/0'' (item ''*/0'')', 'a zero step'
);
select throws_ok(
    $$ select pgclaim._cron_slot('1,,2 * * * *', 'UTC', now(), true) $$, '22023',
    'pgclaim: invalid cron minute field ''1,,2'' (item '''')', 'an empty list item'
);
select throws_ok(
    $$ select pgclaim._cron_slot('*-5 * * * *', 'UTC', now(), true) $$, '22023',
    'pgclaim: invalid cron minute field ''*-5'' (item ''*-5'')', 'a range from *'
);
select throws_ok(
    $$ select pgclaim._cron_slot('0 0 30 feb *', 'UTC', now(), true) $$, '22023',
    'pgclaim: cron expression ''0 0 30 feb *'' never matches', '30 February'
);

select * from finish();
rollback;
