-- pgclaim._token_groups(ids, lease_tokens): the ids of a report grouped by the
-- lease token each must be held under (one group with a null token when no
-- tokens are given). A claim gives one token to its whole batch, so a report
-- usually makes one group: that case is decided without grouping. The reports
-- then touch each group with one `id = any(...)` primary-key scan, which locks
-- rows in id order whatever the planner's statistics say.
-- PL/pgSQL, not SQL: it keeps its plans between calls (every report calls it).
-- Returns: setof (token bigint, members bigint[]). Raises: nothing. Tables: none.
create or replace function pgclaim._token_groups(ids bigint[], lease_tokens bigint[])
returns table (token bigint, members bigint[])
language plpgsql
immutable
set search_path = pg_catalog, pg_temp
as $fn$
declare
    v_first bigint := _token_groups.lease_tokens[1];
begin
    if _token_groups.lease_tokens is null then
        return query select null::bigint, _token_groups.ids;
        return;
    end if;
    if v_first is not null and v_first = all(_token_groups.lease_tokens) then
        return query select v_first, _token_groups.ids;
        return;
    end if;
    return query
    select t.token, pg_catalog.array_agg(t.id order by t.id)
    from rows from (
        pg_catalog.unnest(_token_groups.ids), pg_catalog.unnest(_token_groups.lease_tokens)
    ) as t (id, token)
    group by t.token;
end;
$fn$;

comment on function pgclaim._token_groups(bigint[], bigint[]) is
'Internal: the ids of a report grouped by the lease token they must be held under.';
