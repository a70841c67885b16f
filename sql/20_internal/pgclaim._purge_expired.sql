-- pgclaim._purge_expired(): the automatic purge that reclaim_orphans runs, so that
-- retention holds without an operator running purge. The table is cut into
-- slices of 1024 pages (8 MB); each call reads one slice (the next one, drawn from
-- purge_slice_seq: n slices are read by n calls in a row, round and round) and
-- deletes, through _purge, at most config.purge_limit records of it that finished
-- longer ago than their queue's retention. A call that found that many leaves its
-- slice to the next call, which goes on there: expired records sit together, as
-- records are stored in about the order they finish. So one call costs a bounded
-- amount however large the table is and whatever its indexes say: a table of one
-- slice is read whole at every call, a larger one swept a slice at a time. Rows
-- another transaction holds are skipped (a later call takes them), so any number
-- of callers may run at once.
-- Returns: how many records it deleted (0 with purge_limit 0). Raises: nothing.
-- Tables: config, queues (read), finished (delete), queue_totals (upsert).
create or replace function pgclaim._purge_expired()
returns integer
language plpgsql
volatile
set search_path = pg_catalog, pg_temp
as $fn$
declare
    -- pages read by one call: with ~50 small records a page, 1024 pages hold about
    -- 50,000 finished records, and a call reads them in milliseconds from memory
    c_slice constant bigint := 1024;
    -- read once: _now() in the statement would be called for every row
    v_now timestamptz := pgclaim._now();
    v_limit integer;
    v_pages bigint;
    v_slice bigint;
    v_first bigint;
    v_ids bigint [];
begin
    select c.purge_limit into v_limit from pgclaim.config as c;
    if v_limit = 0 then
        return 0;
    end if;
    v_pages := pg_catalog.pg_relation_size('pgclaim.finished'::pg_catalog.regclass)
        / pg_catalog.current_setting('block_size')::bigint;
    if v_pages = 0 then
        return 0;
    end if;
    -- slice k of the table (k from 0 to the number of slices - 1)
    v_slice := pg_catalog.nextval('pgclaim.purge_slice_seq'::pg_catalog.regclass);
    v_first := (v_slice - 1) % ((v_pages + c_slice - 1) / c_slice) * c_slice;
    -- A TID range scan: reads the slice's pages, nothing else.
    select pg_catalog.array_agg(e.id) into v_ids
    from (
        select f.id
        from pgclaim.finished as f
        inner join pgclaim.queues as q on f.queue = q.queue
        where f.ctid >= pg_catalog.format('(%s,0)', v_first)::tid
          and f.ctid < pg_catalog.format('(%s,0)', v_first + c_slice)::tid
          and f.finished_at < v_now - q.retention
        limit v_limit
        for update of f skip locked
    ) as e;
    if v_ids is null then
        return 0;
    end if;
    if pg_catalog.cardinality(v_ids) = v_limit then
        -- there may be more: the next call reads this slice again (a call made
        -- meanwhile may have drawn the next one; then the lap revisits that one)
        perform pg_catalog.setval('pgclaim.purge_slice_seq'::pg_catalog.regclass, v_slice, false);
    end if;
    return pgclaim._purge(v_ids);
end;
$fn$;

comment on function pgclaim._purge_expired() is
'Internal: deletes at most config.purge_limit finished records past their queue''s '
'retention from the next slice of 1024 pages of pgclaim.finished (reclaim_orphans).';
