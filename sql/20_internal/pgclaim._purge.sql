-- pgclaim._purge(ids): deletes the finished records among ids (of any queue) and
-- takes the completed ones among them off their queue's completion total (the
-- slot of this transaction in queue_totals, _slot). purge and the automatic purge of
-- reclaim_orphans (_purge_expired) pick the ids; this is where they go.
-- Returns: how many records it deleted. Raises: nothing.
-- Tables: finished (delete), queue_totals (upsert).
create or replace function pgclaim._purge(ids bigint[])
returns integer
language plpgsql
volatile
set search_path = pg_catalog, pg_temp
as $fn$
declare
    v_count integer;
    v_slot smallint := pgclaim._slot();
begin
    with gone as (
        delete from pgclaim.finished as f
        where f.id = any(_purge.ids)
        returning f.queue, f.status
    ),

    -- the completions kept in pgclaim.finished, as counted in queue_totals
    counted as (
        insert into pgclaim.queue_totals as t (queue, slot, completed)
        select g.queue, v_slot, -pg_catalog.count(*)
        from gone as g
        where g.status = 'completed'
        group by g.queue
        on conflict on constraint queue_totals_pkey do update
        set completed = t.completed + excluded.completed
    )

    select pg_catalog.count(*)::integer into v_count from gone as g;
    return v_count;
end;
$fn$;

comment on function pgclaim._purge(bigint[]) is
'Internal: deletes the finished records among ids and takes their completions off '
'queue_totals. Returns how many it deleted.';
