-- pgclaim._report(action, worker_id, ids, lease_tokens, lease): the one
-- statement behind complete, extend_lease and release. It changes only the
-- records among ids that worker_id holds now, under the role that claimed them
-- (unless the caller is a pgclaim_admin) and, where lease_tokens is given,
-- position by position under that very claim:
--   'complete'  completed: moved to pgclaim.finished (_finish), finished now;
--   'extend'    lease_until = now + lease (default: the length it was claimed with);
--   'release'   pending again at once, the attempt given back, lease cleared (as
--               _end_attempt does), and the queues' workers woken.
-- Ids are grouped by token (_token_groups: a claim gives one token to its whole
-- batch) and each group is one `id = any(...)` primary-key scan, which locks
-- rows in id order whatever the planner's statistics say.
-- Returns: how many records it changed. Raises: 22004/22023 bad worker_id or
-- arrays (_check_text, _check_ids). Tables: records (update, delete), finished (insert),
-- queue_totals (upsert).
create or replace function pgclaim._report(
    action text, worker_id text, ids bigint[], lease_tokens bigint[], lease interval
)
returns integer
language plpgsql
volatile
set search_path = pg_catalog, pg_temp
as $fn$
declare
    v_now timestamptz := pgclaim._now();
    v_me oid := pgclaim._caller();
    v_admin boolean := pgclaim._admin(v_me);
    v_release boolean := _report.action = 'release';
    v_complete boolean := _report.action = 'complete';
    v_count integer := 0;
    v_n integer;
    v_queues text [] := '{}'::text [];
    v_changed text [];
    v_group record;
begin
    perform pgclaim._check_text('worker_id', _report.worker_id);
    perform pgclaim._check_ids(_report.ids, _report.lease_tokens);
    for v_group in
        select g.token, g.members
        from pgclaim._token_groups(_report.ids, _report.lease_tokens) as g
    loop
        if v_complete then
            select pg_catalog.count(*)::integer into v_n
            from pgclaim._finish(
                v_group.members, 'completed', v_now, null, '{running}', _report.worker_id,
                v_group.token, v_me, v_admin
            ) as f;
        else
            with changed as (
                update pgclaim.records as r set
                    status = case when v_release then 'pending'::pgclaim.status else r.status end,
                    attempt = case when v_release then r.attempt - 1 else r.attempt end,
                    lease_until = case
                        when v_release then null
                        else v_now + coalesce(_report.lease, r.lease_for)
                    end,
                    lease_for = case
                        when v_release then null else coalesce(_report.lease, r.lease_for)
                    end,
                    worker_id = case when v_release then null else r.worker_id end,
                    lease_token = case when v_release then null else r.lease_token end,
                    holder_role = case when v_release then null else r.holder_role end
                where r.id = any(v_group.members)
                  -- status compared as text: the planner must not read the partial index
                  -- of running records whole; it looks the ids up by primary key, in id
                  -- order. The same holder checks as _finish makes for a completion.
                  and r.status::text = 'running'
                  and r.worker_id = _report.worker_id
                  and (v_group.token is null or r.lease_token = v_group.token)
                  and (v_admin or coalesce(r.holder_role, v_me) = v_me)
                returning r.queue
            )
            select
                pg_catalog.count(*)::integer,
                pg_catalog.array_agg(changed.queue) filter (where v_release)
            into v_n, v_changed
            from changed;
        end if;
        v_count := v_count + v_n;
        if v_release and v_n > 0 then
            v_queues := v_queues || v_changed;
        end if;
    end loop;
    if pg_catalog.cardinality(v_queues) > 0 then
        -- v_queues has a queue per record released
        perform pgclaim._count_attempts('release', v_queues);
        perform pgclaim._notify(q.queue)
        from (select distinct u.queue from pg_catalog.unnest(v_queues) as u (queue)) as q;
    end if;
    return v_count;
end;
$fn$;

comment on function pgclaim._report(text, text, bigint[], bigint[], interval) is
'Internal: complete, extend or release the records among ids that worker_id holds '
'under the caller''s role (and the given lease_tokens); returns how many.';
