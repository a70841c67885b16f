-- pgclaim._check_ids(ids, lease_tokens): validates the arrays of a report.
-- Returns: nothing.
-- Raises: 22004 when ids is null or holds a null, or lease_tokens holds a null
-- (named by position: a null token would turn fencing off for its id); 22023
-- when either array has more than one dimension, when lease_tokens is given with
-- another length than ids (each token fences the id at the same position), or
-- when ids has more than config.max_ids elements.
-- Tables: config (read).
create or replace function pgclaim._check_ids(ids bigint[], lease_tokens bigint[])
returns void
language plpgsql
stable
set search_path = pg_catalog, pg_temp
as $fn$
declare
    v_max integer;
    v_at integer;
begin
    if ids is null then
        raise exception using errcode = '22004', message = 'pgclaim: ids must not be null';
    end if;
    if pg_catalog.array_ndims(ids) > 1 or pg_catalog.array_ndims(lease_tokens) > 1 then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format(
                'pgclaim: %s must have one dimension, got %s',
                case when pg_catalog.array_ndims(ids) > 1 then 'ids' else 'lease_tokens' end,
                greatest(pg_catalog.array_ndims(ids), pg_catalog.array_ndims(lease_tokens)));
    end if;
    v_at := pg_catalog.array_position(ids, null);
    if v_at is not null then
        raise exception using
            errcode = '22004',
            message = pg_catalog.format('pgclaim: ids[%s] must not be null', v_at);
    end if;
    select c.max_ids into v_max from pgclaim.config as c;
    if pg_catalog.cardinality(ids) > v_max then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format(
                'pgclaim: ids has %s elements, more than the limit of %s',
                pg_catalog.cardinality(ids), v_max),
            hint = 'Split the call, or raise the limit with pgclaim.configure(max_ids => ...).';
    end if;
    if lease_tokens is null then
        return;
    end if;
    if pg_catalog.cardinality(lease_tokens) <> pg_catalog.cardinality(ids) then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format(
                'pgclaim: lease_tokens has %s elements but ids has %s',
                pg_catalog.cardinality(lease_tokens), pg_catalog.cardinality(ids)),
            hint = 'Pass one lease token per id, in the same order, or none.';
    end if;
    v_at := pg_catalog.array_position(lease_tokens, null);
    if v_at is not null then
        raise exception using
            errcode = '22004',
            message = pg_catalog.format('pgclaim: lease_tokens[%s] must not be null', v_at);
    end if;
end;
$fn$;

comment on function pgclaim._check_ids(bigint[], bigint[]) is
'Internal: raises 22004 for null ids or elements, 22023 when an array has more than one '
'dimension, lease_tokens and ids differ in length or ids exceeds config.max_ids.';
