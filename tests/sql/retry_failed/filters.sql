-- retry_failed and cancel by filter: error pattern, finished-at range, attempt,
-- each narrowing the records of one queue; bad filters refused, nothing changed.
begin;
select plan(20);

select pgclaim_test.set_now('2030-01-01 00:00:00+00');
select pgclaim.create_queue('df', max_attempts => 3);
select pgclaim.create_queue('df_other', max_attempts => 3);
-- Dead letters: a (timeout, attempt 1, 00:00), b (timeout, attempt 2, 01:00),
-- c (bad input, attempt 1, 02:00); o of another queue (timeout).
create function pg_temp.dead(queue text, error text, attempts integer) returns bigint
language plpgsql as $$
declare
    v_id bigint := pgclaim.enqueue(queue, '{}');
begin
    for i in 1..attempts loop
        perform pgclaim.claim_batch(queue, 'w', 1);
        perform pgclaim.fail(
            'w', v_id, error, retry_after => '0', fatal => i = attempts);
    end loop;
    return v_id;
end;
$$;
select pgclaim_test.keep('a', pg_temp.dead('df', 'timeout after 30s', 1));
select pgclaim_test.advance('1 hour');
select pgclaim_test.keep('b', pg_temp.dead('df', 'timeout after 5s', 2));
select pgclaim_test.advance('1 hour');
select pgclaim_test.keep('c', pg_temp.dead('df', 'bad input', 1));
select pgclaim_test.keep('o', pg_temp.dead('df_other', 'timeout after 30s', 1));
select pgclaim_test.advance('1 hour');

select is(
    pgclaim.retry_failed('df', error_like => 'timeout%', min_attempt => 2), 1,
    'error pattern and attempt: one dead letter'
);
select is(pgclaim_test.status(pgclaim_test.id('b')), 'pending', 'the one failed on attempt 2');
select is(
    pgclaim.retry_failed(
        'df',
        finished_after => '2030-01-01 01:30:00+00',
        finished_before => '2030-01-01 03:00:00+00'
    ),
    1,
    'finished range: one dead letter'
);
select is(pgclaim_test.status(pgclaim_test.id('c')), 'pending', 'the one finished at 02:00');
select is(
    pgclaim.retry_failed('df', error_like => 'bad%'), 0, 'a pattern no dead letter has: none'
);
select is(
    pgclaim.retry_failed('df', error_like => 'timeout%'), 1, 'the last timeout of the queue'
);
select is(
    pgclaim_test.status(pgclaim_test.id('o')), 'failed', 'the other queue''s stays failed'
);
select is(
    pgclaim.retry_failed('df', ids => array[pgclaim_test.id('a')]), 0,
    'ids narrow as before'
);

-- cancel by filter: records waiting for their retry, of one queue.
select pgclaim_test.keep('p1', pgclaim.enqueue('df', '{}'));
select pgclaim.claim_batch('df', 'w', 10);
select
    pgclaim.fail(
        'w', r.id, case when r.id = pgclaim_test.id('p1') then 'quota' else 'io' end,
        retry_after => '1 day'
    )
from pgclaim.records as r
where r.queue = 'df';
select is(
    pgclaim.cancel(queue => 'df', error_like => 'quota'), 1,
    'cancel by error pattern: the record retrying after that error'
);
select is(pgclaim_test.status(pgclaim_test.id('p1')), 'cancelled', 'it is cancelled');
select is(
    pgclaim.cancel(queue => 'df', min_attempt => 3), 0, 'none has made three attempts'
);
select is(
    pgclaim.cancel(queue => 'df'), 3, 'the queue alone: every unfinished record of it'
);

select pgclaim_test.rejects(
    $$ select pgclaim.cancel() $$, '22004', 'cancel without ids or queue is refused'
);
select pgclaim_test.rejects(
    $$ select pgclaim.retry_failed('df', error_like => '') $$, '22023',
    'an empty pattern is refused'
);
select pgclaim_test.rejects(
    $$ select pgclaim.cancel(queue => 'df', min_attempt => 0) $$, '22023',
    'min_attempt 0 is refused'
);
select pgclaim_test.rejects(
    $$ select pgclaim.cancel(queue => 'nope') $$, 'PC001', 'an unknown queue is refused'
);

select * from finish();
rollback;
