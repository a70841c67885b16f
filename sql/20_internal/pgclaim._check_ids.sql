-- pgclaim._check_ids(ids, lease_tokens): validates the arrays of a report.
-- Returns: nothing.
-- Raises: 22004 when ids is null; 22023 when lease_tokens is given with another
-- length than ids (each token fences the id at the same position). Tables: none.
create or replace function pgclaim._check_ids(ids bigint[], lease_tokens bigint[])
returns void
language plpgsql
immutable
set search_path = ''
as $fn$
begin
    if ids is null then
        raise exception using errcode = '22004', message = 'pgclaim: ids must not be null';
    end if;
    if lease_tokens is not null
       and pg_catalog.cardinality(lease_tokens) <> pg_catalog.cardinality(ids) then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format(
                'pgclaim: lease_tokens has %s elements but ids has %s',
                pg_catalog.cardinality(lease_tokens), pg_catalog.cardinality(ids)),
            hint = 'Pass one lease token per id, in the same order, or none.';
    end if;
end;
$fn$;

comment on function pgclaim._check_ids(bigint[], bigint[]) is
'Internal: raises 22004 for null ids, 22023 when lease_tokens and ids differ in length.';
