-- fair: the heads of groups are handed out in the order they became heads, so
-- groups take turns; without it, by their own due time (a big old group goes
-- first as long as its records are older).
begin;
select plan(2);

select pgclaim_test.set_now('2030-01-01 00:00:00+00');
select pgclaim.create_queue('fq', fair => true);
select pgclaim.create_queue('sq');
-- Group big: records due at 00:00 and later; group small: one record due at 00:01.
select pgclaim.enqueue(q.q, '{}', group_key => 'big', run_at => '2030-01-01 00:00:00+00')
from (values ('fq'), ('sq')) as q (q), pg_catalog.generate_series(1, 3);
select pgclaim.enqueue(q.q, '{}', group_key => 'small', run_at => '2030-01-01 00:01:00+00')
from (values ('fq'), ('sq')) as q (q);
select pgclaim_test.advance('2 minutes');

create function pg_temp.order_of(queue text) returns text[] language plpgsql as $fn$
declare
    v_out text[] := '{}';
    v_c record;
begin
    -- one record at a time, completing each: the order the queue hands them out
    loop
        select c.id, r.group_key into v_c from pgclaim.claim_batch(queue, 'w', 1) as c
        inner join pgclaim.records as r on c.id = r.id;
        exit when not found;
        v_out := v_out || v_c.group_key;
        perform pgclaim.complete('w', array[v_c.id]);
        perform pgclaim_test.advance('1 second');
    end loop;
    return v_out;
end;
$fn$;

select is(
    pg_temp.order_of('sq'), array['big', 'big', 'big', 'small'],
    'strict FIFO: the big group''s older records first'
);
select is(
    pg_temp.order_of('fq'), array['big', 'small', 'big', 'big'],
    'fair: the small group''s head goes before the big group''s next record'
);

select * from finish();
rollback;
