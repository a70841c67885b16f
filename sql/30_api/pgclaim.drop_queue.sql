-- pgclaim.drop_queue(queue, force): removes a queue and its records.
-- Waits for transactions enqueueing into the queue to finish. The queue's row and
-- its records are locked in attempts of at most 100 ms that give back what they
-- got: a report holds its records while it finishes them (locked in the order its
-- plan reads them), so waiting long for them while holding others would deadlock.
-- Returns: how many records were deleted.
-- Raises: PC001 unknown queue; PC004 when unfinished records remain and force is
-- false; 55P03 when the lock is not had within 5 s (retried by the client).
-- Tables: queues, records, finished, waiting, groups, queue_flow, dedup_keys,
-- queue_totals (delete); queue_grants (cascade).
create or replace function pgclaim.drop_queue(queue text, force boolean default false)
returns integer
language plpgsql
volatile
security definer
set search_path = pg_catalog, pg_temp
set lock_timeout = '5s'
as $fn$
declare
    v_unfinished bigint;
    v_count integer;
    v_more integer;
    v_timeout text := pg_catalog.current_setting('lock_timeout');
    v_give_up timestamptz := pg_catalog.clock_timestamp() + v_timeout::interval;
begin
    perform pgclaim._queue(drop_queue.queue);
    loop
        begin
            perform pg_catalog.set_config('lock_timeout', '100ms', true);
            perform 1 from pgclaim.queues as q where q.queue = drop_queue.queue for update;
            perform 1 from pgclaim.records as r
            where r.queue = drop_queue.queue
            order by r.id
            for update;
            exit;
        exception when lock_not_available or deadlock_detected then
            if pg_catalog.clock_timestamp() >= v_give_up then
                raise exception using
                    errcode = '55P03',
                    message = pg_catalog.format(
                        'pgclaim: could not lock queue %L and its records', drop_queue.queue),
                    hint = 'Reports on its records hold them: try again.';
            end if;
            perform pg_catalog.pg_sleep(0.02 * pg_catalog.random());
        end;
    end loop;
    perform pg_catalog.set_config('lock_timeout', v_timeout, true);
    if not coalesce(drop_queue.force, false) then
        select pg_catalog.count(*) into v_unfinished from pgclaim.records as r
        where r.queue = drop_queue.queue;
        if v_unfinished > 0 then
            raise exception using
                errcode = 'PC004',
                message = pg_catalog.format(
                    'pgclaim: queue %L still has %s unfinished records',
                    drop_queue.queue, v_unfinished),
                hint = 'Drain or cancel them first, or pass force => true.';
        end if;
    end if;
    delete from pgclaim.records as r where r.queue = drop_queue.queue;
    get diagnostics v_count = row_count;
    delete from pgclaim.finished as f where f.queue = drop_queue.queue;
    get diagnostics v_more = row_count;
    delete from pgclaim.waiting as w where w.queue = drop_queue.queue;
    delete from pgclaim.groups as g where g.queue = drop_queue.queue;
    delete from pgclaim.queue_flow as f where f.queue = drop_queue.queue;
    delete from pgclaim.dedup_keys as d where d.queue = drop_queue.queue;
    delete from pgclaim.queue_totals as t where t.queue = drop_queue.queue;
    -- its grants go with it (on delete cascade)
    delete from pgclaim.queues as q where q.queue = drop_queue.queue;
    return v_count + v_more;
end;
$fn$;

comment on function pgclaim.drop_queue(text, boolean) is
'Drops a queue and all its records; returns how many records were deleted. '
'Raises PC001 unknown queue, PC004 when unfinished records remain and force is false.';
