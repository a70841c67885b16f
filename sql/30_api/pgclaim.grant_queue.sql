-- pgclaim.grant_queue(queue, role, privileges): gives role (and its members) the
-- privileges on queue: 'enqueue' (enqueue, enqueue_batch), 'claim' (claim_batch;
-- reports need only to hold the record) and 'read' (its row in queue_stats and
-- health(), its records in stuck_records). The first grant restricts the queue:
-- from then on roles without a grant get 42501 (and do not see it), while
-- pgclaim_admin keeps every right. Granting what a role has is a no-op.
-- Returns: the role's privileges on the queue afterwards, sorted.
-- Raises: PC001 unknown queue; 42704 unknown role; 22004 null role, privileges or
-- element; 22023 empty privileges or an unknown privilege.
-- Tables: queues (update), queue_grants (insert).
create or replace function pgclaim.grant_queue(queue text, role text, privileges text[])
returns text[]
language plpgsql
volatile
security definer
set search_path = pg_catalog, pg_temp
as $fn$
declare
    v_role oid := pgclaim._check_grant(grant_queue.queue, grant_queue.role, grant_queue.privileges);
begin
    insert into pgclaim.queue_grants as g (queue, grantee, privilege, granted_at)
    select grant_queue.queue, v_role, p.p, pgclaim._now()
    from pg_catalog.unnest(grant_queue.privileges) as p (p)
    on conflict on constraint queue_grants_pkey do nothing;
    update pgclaim.queues as q set restricted = true
    where q.queue = grant_queue.queue and not q.restricted;
    return pgclaim._granted(grant_queue.queue, v_role);
end;
$fn$;

comment on function pgclaim.grant_queue(text, text, text[]) is
'Grants role the privileges (enqueue, claim, read) on a queue, which restricts it to '
'its granted roles and pgclaim_admin; returns the role''s privileges on it. '
'Raises PC001, 42704, 22004, 22023.';
