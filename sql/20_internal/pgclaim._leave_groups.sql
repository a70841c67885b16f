-- pgclaim._leave_groups(ids, now): records of FIFO groups that _finish has just
-- moved to pgclaim.finished. One that waited behind its group's head (cancelled)
-- leaves pgclaim.waiting, and its finished row gets its own priority and due
-- time back; the heads hand their groups on (_promote).
-- Returns: nothing. Raises: nothing.
-- Tables: waiting (delete), finished (update), and _promote's.
create or replace function pgclaim._leave_groups(
    ids bigint[], now timestamptz
)
returns void
language plpgsql
volatile
set search_path = pg_catalog, pg_temp
as $fn$
declare
    v_queues text [];
    v_groups text [];
begin
    with
    gone as (
        delete from pgclaim.waiting as w
        where w.id = any(_leave_groups.ids)
        returning w.id, w.priority, w.run_at
    ),

    restored as (
        update pgclaim.finished as f set priority = gone.priority, run_at = gone.run_at
        from gone
        where f.id = gone.id
    )

    -- the others were heads
    select pg_catalog.array_agg(f.queue), pg_catalog.array_agg(f.group_key)
    into v_queues, v_groups
    from pgclaim.finished as f
    where f.id = any(_leave_groups.ids)
      and not exists (select from gone where gone.id = f.id);
    if v_groups is not null then
        perform pgclaim._promote(v_queues, v_groups, _leave_groups.now);
    end if;
end;
$fn$;

comment on function pgclaim._leave_groups(bigint[], timestamptz) is
'Internal: records of FIFO groups that just finished leave them; heads hand them on.';
