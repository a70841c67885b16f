-- pgclaim._end_attempt(ids, errors, retry_at, fatal, counted, now): the one
-- place where running records stop being held without completing (fail,
-- fail_batch, reclaim, deregister_worker). Each record of ids goes back to
-- pending, due at its retry_at (or keeping its place in the queue, run_at, when
-- that is null), while attempts remain and it is not fatal; otherwise it is
-- dead-lettered: it moves to pgclaim.finished as failed (_finish). errors (one
-- per id) become last_error. With counted false (a release) the attempt is given
-- back: the record is pending again whatever its attempts and keeps its
-- last_error. The lease columns are cleared here; _report clears them too when it
-- releases (in the one statement that every report makes).
-- Callers lock the rows and check that the caller holds them first.
-- Returns: (id, queue, status) of each record it changed. Raises: nothing.
-- Tables: records (update, delete), finished (insert).
create or replace function pgclaim._end_attempt(
    ids bigint[],
    errors text[],
    retry_at timestamptz[],
    fatal boolean[],
    counted boolean,
    now timestamptz
)
returns table (id bigint, queue text, status pgclaim.status)
language plpgsql
volatile
set search_path = pg_catalog, pg_temp
as $fn$
declare
    v_dead bigint [];
    v_dead_errors text [];
begin
    if _end_attempt.counted then
        select pg_catalog.array_agg(v.id order by v.id), pg_catalog.array_agg(v.error order by v.id)
        into v_dead, v_dead_errors
        from rows from (
            pg_catalog.unnest(_end_attempt.ids),
            pg_catalog.unnest(_end_attempt.errors),
            pg_catalog.unnest(_end_attempt.fatal)
        ) as v (id, error, fatal)
        inner join pgclaim.records as r on v.id = r.id
        where coalesce(v.fatal, false) or r.attempt >= r.max_attempts;
        return query
        select f.id, f.queue, 'failed'::pgclaim.status
        from pgclaim._finish(v_dead, 'failed', _end_attempt.now, v_dead_errors) as f;
    end if;
    return query
    update pgclaim.records as r set
        status = 'pending',
        attempt = case when _end_attempt.counted then r.attempt else r.attempt - 1 end,
        run_at = coalesce(v.retry_at, r.run_at),
        last_error = case
            when _end_attempt.counted then coalesce(v.error, r.last_error) else r.last_error
        end,
        worker_id = null,
        lease_until = null,
        lease_token = null,
        lease_for = null,
        holder_role = null
    from rows from (
        pg_catalog.unnest(_end_attempt.ids),
        pg_catalog.unnest(_end_attempt.errors),
        pg_catalog.unnest(_end_attempt.retry_at)
    ) as v (id, error, retry_at)
    -- status compared as text: look each id up by primary key, never read the
    -- partial index of running records whole
    where r.id = v.id and r.status::text = 'running'
    returning r.id, r.queue, r.status;
end;
$fn$;

comment on function pgclaim._end_attempt(
    bigint[], text[], timestamptz[], boolean[], boolean, timestamptz
) is
'Internal: running records back to pending (or dead-lettered to pgclaim.finished when '
'out of attempts or fatal), lease cleared; with counted false the attempt is given back.';
