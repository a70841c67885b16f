-- pgclaim.fence_trigger(): a row trigger for an application's own table, so that
-- only a worker that still holds its claim can write a record's result there:
--   create trigger results_fence before insert or update on app.results
--   for each row execute function pgclaim.fence_trigger('record_id', 'lease_token');
-- The arguments name the row's columns holding the record id and the lease token
-- (bigint, or a type with an assignment cast to bigint). Each row inserted or
-- updated (deleted: the old row) must carry a claim that pgclaim.holds(): live,
-- and then locked against being taken back until the transaction commits. A row
-- with a null id or token is refused too: limit the trigger with WHEN or
-- UPDATE OF for rows written outside a claim.
-- SECURITY INVOKER: it runs as the role writing the row, which needs EXECUTE on
-- pgclaim.holds (pgclaim_worker); it calls nothing else of pgclaim's and reads
-- only the row it is given.
-- Returns: the row (trigger). Raises: PC006 the claim is not held (expired,
-- taken back, finished, another token, or no id or token given); 22023 used as
-- other than a row trigger, or without two column names the table has.
-- Tables: records (read, row lock, through holds).
create or replace function pgclaim.fence_trigger()
returns trigger
language plpgsql
volatile
security invoker
set search_path = pg_catalog, pg_temp
as $fn$
declare
    v_id bigint;
    v_token bigint;
    v_table text := pg_catalog.format('%I.%I', tg_table_schema, tg_table_name);
begin
    if tg_level <> 'ROW' or tg_nargs <> 2 then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format(
                'pgclaim: fence_trigger on %s must be a row trigger with two arguments, '
                'the id and lease token columns', v_table),
            hint = 'for each row execute function pgclaim.fence_trigger(''record_id'', '
            '''lease_token'')';
    end if;
    if not exists (
        select from pg_catalog.pg_attribute as a
        where a.attrelid = tg_relid and a.attnum > 0 and not a.attisdropped
          and a.attname in (tg_argv[0], tg_argv[1])
        having pg_catalog.count(distinct a.attname) = 2
    ) then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format(
                'pgclaim: fence_trigger: table %s has no column %s or %s', v_table,
                pgclaim._show(tg_argv[0]), pgclaim._show(tg_argv[1]));
    end if;
    -- The two fields of the row itself (no table is read): format's %I quotes them.
    execute pg_catalog.format('select ($1).%I, ($1).%I', tg_argv[0], tg_argv[1])
    into v_id, v_token
    using case when tg_op = 'DELETE' then old else new end;
    if v_id is null or v_token is null or not pgclaim.holds(v_id, v_token) then
        raise exception using
            errcode = 'PC006',
            message = pg_catalog.format(
                'pgclaim: the claim of record %s is not held: write to %s refused',
                coalesce(v_id::text, 'null'), v_table),
            detail = case
                when v_id is null or v_token is null then pg_catalog.format(
                    'The row has no %s.', case when v_id is null then tg_argv[0] else tg_argv[1] end)
                else 'Its lease expired or was taken back, it finished, or the token is not '
                'the one of its current claim.'
            end;
    end if;
    if tg_op = 'DELETE' then
        return old;
    end if;
    return new;
end;
$fn$;

comment on function pgclaim.fence_trigger() is
'Row trigger for application tables: fence_trigger(id_column, token_column) refuses '
'(PC006) a row whose record claim is not held (pgclaim.holds). Security invoker.';
