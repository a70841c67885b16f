-- pgclaim._token_groups(ids, lease_tokens): the ids of a report grouped by the
-- lease token each must be held under (one group with a null token when no
-- tokens are given). A claim gives one token to its whole batch, so a report
-- usually makes one group: the reports then touch each group with one
-- `id = any(...)` primary-key scan, which locks rows in id order whatever the
-- planner's statistics say.
-- Returns: setof (token bigint, ids bigint[]). Raises: nothing. Tables: none.
create or replace function pgclaim._token_groups(ids bigint[], lease_tokens bigint[])
returns table (token bigint, ids bigint[])
language sql
immutable
set search_path = pg_catalog, pg_temp
as $fn$
    select null::bigint, _token_groups.ids
    where _token_groups.lease_tokens is null
    union all
    select t.token, pg_catalog.array_agg(t.id order by t.id)
    from rows from (
        pg_catalog.unnest(_token_groups.ids), pg_catalog.unnest(_token_groups.lease_tokens)
    ) as t (id, token)
    where _token_groups.lease_tokens is not null
    group by t.token;
$fn$;

comment on function pgclaim._token_groups(bigint[], bigint[]) is
'Internal: the ids of a report grouped by the lease token they must be held under.';
