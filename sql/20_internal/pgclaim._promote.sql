-- pgclaim._promote(queues, groups, now): the heads of these groups (position by
-- position in the two arrays) have just left pgclaim.records. For each group,
-- the first record waiting behind it in (priority desc, run_at, id) order becomes
-- the head: its priority and run_at (-2147483648 and 'infinity' while it waited)
-- are its own again (run_at at least now in a fair queue, so that groups take
-- turns). A group with no
-- record left loses its row. The groups' rows are held first, in one statement:
-- an enqueue adding a record behind the head holds the row until it commits
-- (_group_join), so the statements after it see that record.
-- Returns: how many records it unblocked. Raises: nothing.
-- Tables: groups (update, delete), waiting (delete), records (update), queues (read).
create or replace function pgclaim._promote(queues text[], groups text[], now timestamptz)
returns integer
language plpgsql
volatile
set search_path = pg_catalog, pg_temp
as $fn$
declare
    v_count integer;
begin
    -- In key order, as every caller that holds several of them takes them.
    perform 1 from pgclaim.groups as g
    where (g.queue, g.group_key) in (
        select u.queue, u.group_key
        from rows from (
            pg_catalog.unnest(_promote.queues), pg_catalog.unnest(_promote.groups)
        ) as u (queue, group_key)
    )
    order by g.queue, g.group_key
    for no key update of g;

    with
    heads as (
        select distinct u.queue, u.group_key
        from rows from (
            pg_catalog.unnest(_promote.queues), pg_catalog.unnest(_promote.groups)
        ) as u (queue, group_key)
    ),

    -- FOR UPDATE under the LIMIT: a waiting record cancelled meanwhile is passed
    -- over for the next one.
    nxt as (
        select w.id
        from heads as h
        cross join lateral (
            select x.id from pgclaim.waiting as x
            where x.queue = h.queue and x.group_key = h.group_key
            order by x.priority desc, x.run_at, x.id
            limit 1
            for update
        ) as w
    ),

    gone as (
        delete from pgclaim.waiting as w
        where w.id in (select nxt.id from nxt)
        returning w.id, w.queue, w.group_key, w.priority, w.run_at
    ),

    unblocked as (
        update pgclaim.records as r set
            priority = gone.priority,
            run_at = case
                when q.fair then greatest(gone.run_at, _promote.now) else gone.run_at
            end
        from gone
        inner join pgclaim.queues as q on gone.queue = q.queue
        where r.id = gone.id
        returning r.id
    ),

    emptied as (
        delete from pgclaim.groups as g
        using heads as h
        where g.queue = h.queue and g.group_key = h.group_key
          and not exists (
              select from gone where gone.queue = h.queue and gone.group_key = h.group_key
          )
    )

    select pg_catalog.count(*)::integer into v_count from unblocked;
    return v_count;
end;
$fn$;

comment on function pgclaim._promote(text[], text[], timestamptz) is
'Internal: hands each group whose head just finished on to its next waiting record, '
'or forgets the group when none is left.';
