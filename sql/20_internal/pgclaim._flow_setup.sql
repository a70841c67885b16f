-- pgclaim._flow_setup(q, backfill): makes the queue's flow-control rows match its
-- settings (create_queue, alter_queue): a queue_flow row while max_running or
-- rate is set (a new bucket starts full: burst tokens), none otherwise; no
-- dedup_keys without a dedup_window, and with backfill (a window just given) the
-- dedup_keys of the records that finished within it, read from pgclaim.finished.
-- Returns: nothing. Raises: nothing.
-- Tables: queue_flow, dedup_keys (insert, update, delete), finished (read).
create or replace function pgclaim._flow_setup(q pgclaim.queues, backfill boolean)
returns void
language plpgsql
volatile
set search_path = pg_catalog, pg_temp
as $fn$
declare
    v_now timestamptz := pgclaim._now();
begin
    if q.max_running is null and q.rate is null then
        delete from pgclaim.queue_flow as f where f.queue = q.queue;
    else
        insert into pgclaim.queue_flow as f (queue, tokens, refilled_at)
        values (q.queue, coalesce(q.burst, 0), v_now)
        on conflict on constraint queue_flow_pkey do update
        set tokens = least(f.tokens, coalesce(q.burst, 0));
    end if;
    if q.dedup_window is null then
        delete from pgclaim.dedup_keys as d where d.queue = q.queue;
    elsif _flow_setup.backfill then
        insert into pgclaim.dedup_keys as d (queue, dedup_key, id, finished_at)
        select distinct on (f.dedup_key) f.queue, f.dedup_key, f.id, f.finished_at
        from pgclaim.finished as f
        where f.queue = q.queue and f.dedup_key is not null
          and f.finished_at >= v_now - q.dedup_window
        order by f.dedup_key, f.finished_at desc, f.id desc
        on conflict on constraint dedup_keys_pkey do nothing;
    end if;
end;
$fn$;

comment on function pgclaim._flow_setup(pgclaim.queues, boolean) is
'Internal: the queue_flow row and dedup_keys that a queue''s flow-control settings call for.';
