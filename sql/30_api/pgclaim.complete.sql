-- pgclaim.complete(worker_id, ids, lease_tokens)
-- Marks completed the records among ids that worker_id holds now (and, where
-- lease_tokens is given, position by position, under that very claim).
-- Returns: how many records it completed; ids it may not touch are skipped.
-- Raises: 22004 null worker_id or ids; 22023 lease_tokens not matching ids.
-- Tables: records (update).
create or replace function pgclaim.complete(
    worker_id text, ids bigint[], lease_tokens bigint[] default null
)
returns integer
language plpgsql
volatile
security definer
set search_path = ''
as $fn$
declare
    v_now timestamptz := pgclaim._now();
    v_count integer := 0;
    v_n integer;
    v_group record;
begin
    perform pgclaim._check_text('worker_id', complete.worker_id);
    perform pgclaim._check_ids(complete.ids, complete.lease_tokens);
    for v_group in
        select g.token, g.ids
        from pgclaim._token_groups(complete.ids, complete.lease_tokens) as g
    loop
        update pgclaim.records as r set
            status = 'completed',
            finished_at = v_now,
            lease_until = null
        where r.id = any(v_group.ids)
          -- status compared as text: the planner must not read the partial index of
          -- running records whole; it looks the ids up by primary key, in id order
          and r.status::text = 'running'
          and r.worker_id = complete.worker_id
          and (v_group.token is null or r.lease_token = v_group.token);
        get diagnostics v_n = row_count;
        v_count := v_count + v_n;
    end loop;
    return v_count;
end;
$fn$;

comment on function pgclaim.complete(text, bigint[], bigint[]) is
'Completes the records among ids that worker_id holds (under the given lease_tokens, '
'when passed); returns how many it completed and skips the rest.';
