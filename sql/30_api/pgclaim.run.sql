-- pgclaim.run(queue, handler, max_records, time_budget): a consumer inside
-- PostgreSQL. Claims due records of the queue (claim_batch, up to 100 at a time)
-- and calls the SQL procedure handler with each (`call handler(record)`, one
-- argument of type pgclaim.claimed), each call in its own subtransaction: when it
-- returns, the record is completed; when it raises, its effects are rolled back
-- and the record fails with the error's SQLSTATE and message as its error text
-- (the queue's retries, backoff and dead letters apply). Claims, the handler's
-- effects and the outcomes all belong to the caller's transaction, so they commit
-- together or not at all: exactly-once effects inside the database, and a run
-- that is rolled back (or whose session dies) leaves its records as they were.
-- It stops after max_records records, when no record is due, or once
-- time_budget has passed (by pgclaim._now(), checked before each record; the
-- records of the batch it has not begun go back, their attempt not counted).
-- SECURITY INVOKER: the handler runs as the caller, with the caller's rights
-- (never as pgclaim_owner). The caller needs pgclaim_worker (claim_batch,
-- complete, fail_batch, release) and EXECUTE on the handler. Like every pgclaim
-- function it pins search_path = pg_catalog, pg_temp, and the handler is called
-- under that path: it names its objects with their schema, or sets its own
-- search_path. The worker id is 'pgclaim.run:' and the backend's pid.
-- Returns: table (id, status, error): each record handled, status 'completed',
-- 'pending' (failed, retried later) or 'failed' (dead-lettered).
-- Raises: what claim_batch raises (PC001, 42501); 22004 a null argument; 22023
-- handler not a procedure taking one pgclaim.claimed, max_records outside
-- 1..100000, time_budget not positive or over 1 hour.
-- Tables: through claim_batch, complete, fail_batch and release only.
create or replace function pgclaim.run(
    queue text,
    handler regprocedure,
    max_records integer default 100,
    time_budget interval default '10 seconds'
)
returns table (id bigint, status text, error text)
language plpgsql
volatile
security invoker
set search_path = pg_catalog, pg_temp
as $fn$
declare
    v_worker text := 'pgclaim.run:' || pg_catalog.pg_backend_pid()::text;
    v_call text;
    v_deadline timestamptz;
    v_batch pgclaim.claimed [];
    v_record pgclaim.claimed;
    v_done integer := 0;
    v_ok bigint [];
    v_ok_tokens bigint [];
    v_failed bigint [];
    v_failed_tokens bigint [];
    v_errors text [];
    v_state text;
    v_message text;
    v_out_of_time boolean := false;
begin
    if run.handler is null then
        raise exception using errcode = '22004', message = 'pgclaim: handler must not be null';
    end if;
    perform pgclaim._check_int('max_records', run.max_records, 1, 100000);
    perform pgclaim._check_interval('time_budget', run.time_budget, false, false, '1 hour');
    select pg_catalog.format('%I.%I', n.nspname, p.proname) into v_call
    from pg_catalog.pg_proc as p
    inner join pg_catalog.pg_namespace as n on p.pronamespace = n.oid
    where p.oid = run.handler and p.prokind = 'p' and p.pronargs = 1
      and p.proargtypes[0] = 'pgclaim.claimed'::pg_catalog.regtype;
    if v_call is null then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format(
                'pgclaim: handler %s is not a procedure taking one pgclaim.claimed',
                run.handler),
            hint = 'create procedure h(r pgclaim.claimed) language plpgsql as ...';
    end if;
    v_deadline := pgclaim._now() + run.time_budget;

    <<batches>>
    while v_done < run.max_records and not v_out_of_time loop
        select pg_catalog.array_agg((
            c.id, c.queue, c.payload, c.attempt, c.max_attempts, c.priority, c.enqueued_at,
            c.run_at, c.lease_until, c.lease_token
        )::pgclaim.claimed order by c.n) into v_batch
        from pgclaim.claim_batch(
            queue => run.queue, worker_id => v_worker,
            batch_size => least(run.max_records - v_done, 100)
        ) with ordinality as c (
            id, queue, payload, attempt, max_attempts, priority, enqueued_at, run_at,
            lease_until, lease_token, n
        );
        exit batches when v_batch is null;
        v_ok := '{}';
        v_ok_tokens := '{}';
        v_failed := '{}';
        v_failed_tokens := '{}';
        v_errors := '{}';
        for v_n in 1..pg_catalog.cardinality(v_batch) loop
            v_record := v_batch[v_n];
            if pgclaim._now() >= v_deadline then
                -- Out of time: the rest of the batch goes back, attempt not counted.
                v_out_of_time := true;
                perform pgclaim.release(
                    v_worker,
                    array(select b.id from pg_catalog.unnest(v_batch[v_n:]) as b),
                    array(select b.lease_token from pg_catalog.unnest(v_batch[v_n:]) as b)
                );
                exit;
            end if;
            begin
                execute pg_catalog.format('call %s($1)', v_call) using v_record;
                v_ok := v_ok || v_record.id;
                v_ok_tokens := v_ok_tokens || v_record.lease_token;
            exception when others then
                get stacked diagnostics v_state = returned_sqlstate, v_message = message_text;
                v_failed := v_failed || v_record.id;
                v_failed_tokens := v_failed_tokens || v_record.lease_token;
                v_errors := v_errors || pg_catalog.format('%s: %s', v_state, v_message);
            end;
            v_done := v_done + 1;
        end loop;
        if pg_catalog.cardinality(v_ok) > 0 then
            perform pgclaim.complete(v_worker, v_ok, v_ok_tokens);
            return query select o.id, 'completed'::text, null::text
            from pg_catalog.unnest(v_ok) as o (id);
        end if;
        if pg_catalog.cardinality(v_failed) > 0 then
            return query
            select f.id, f.status, e.error
            from pgclaim.fail_batch(v_worker, v_failed, v_errors, v_failed_tokens) as f
            inner join rows from (pg_catalog.unnest(v_failed), pg_catalog.unnest(v_errors))
                as e (id, error) on f.id = e.id;
        end if;
    end loop;
end;
$fn$;

comment on function pgclaim.run(text, regprocedure, integer, interval) is
'Claims records of a queue and calls the procedure handler(pgclaim.claimed) for each in '
'its own subtransaction, completing or failing it in the caller''s transaction. '
'Security invoker: the handler runs as the caller.';
