-- metrics: a transaction counts in one slot of queue_totals that it holds (an
-- advisory lock) until it ends; the slot starts from its backend's own, and a
-- held slot is kept for the rest of the transaction.
begin;
select plan(5);

select pgclaim.create_queue('s');
select pgclaim.enqueue('s', '{}') from generate_series(1, 2);
select pgclaim.claim_batch('s', 'w', 2);

select is(
    pgclaim._slot(), (pg_backend_pid() % 64)::smallint,
    'with no other transaction counting, a backend counts in its own slot'
);
select is(pgclaim._slot(), pgclaim._slot(), 'the slot stays the same within a transaction');
select is(
    (
        select array_agg(l.objid::integer) from pg_locks as l
        where l.locktype = 'advisory' and l.pid = pg_backend_pid() and l.classid = 1885823793
    ),
    array[pg_backend_pid() % 64],
    'the slot is held by a transaction-level advisory lock'
);

select pgclaim.complete('w', (
    select array_agg(id) from pgclaim.records
    where queue = 's'
));
select is(
    (
        select array_agg(t.slot) from pgclaim.queue_totals as t
        where t.queue = 's'
    ),
    array[(pg_backend_pid() % 64)::smallint],
    'completions are counted in the held slot'
);
select is(
    (
        select sum(t.completions)::integer from pgclaim.queue_totals as t
        where t.queue = 's'
    ),
    2, 'once each'
);

select * from finish();
rollback;
