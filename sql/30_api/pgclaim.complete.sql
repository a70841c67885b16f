-- pgclaim.complete(worker_id, ids, lease_tokens)
-- Marks completed the records among ids that worker_id holds now, claimed by the
-- caller's role (a pgclaim_admin may complete any worker's) and, where
-- lease_tokens is given, position by position, under that very claim (_report).
-- Returns: how many records it completed; ids it may not touch are skipped.
-- Raises: 22004 null worker_id, ids or element; 22023 lease_tokens not matching
-- ids, more ids than config.max_ids. Tables: records (update).
create or replace function pgclaim.complete(
    worker_id text, ids bigint[], lease_tokens bigint[] default null
)
returns integer
language plpgsql
volatile
security definer
set search_path = pg_catalog, pg_temp
as $fn$
begin
    return pgclaim._report('complete', complete.worker_id, complete.ids, complete.lease_tokens, null);
end;
$fn$;

comment on function pgclaim.complete(text, bigint[], bigint[]) is
'Completes the records among ids that worker_id holds under the caller''s role (and the '
'given lease_tokens, when passed); returns how many it completed and skips the rest.';
