-- pgclaim.revoke_queue(queue, role, privileges): takes back privileges that
-- grant_queue gave role on queue. When the queue's last grant goes, it is open
-- again to every pgclaim role, as a queue that never had grants. Records a role
-- holds stay its own to report on until their lease ends.
-- Returns: the role's privileges on the queue afterwards, sorted.
-- Raises: PC001 unknown queue; 42704 unknown role; 22004 null role, privileges or
-- element; 22023 empty privileges or an unknown privilege.
-- Tables: queues (update), queue_grants (delete).
create or replace function pgclaim.revoke_queue(queue text, role text, privileges text[])
returns text[]
language plpgsql
volatile
security definer
set search_path = pg_catalog, pg_temp
as $fn$
declare
    v_role oid := pgclaim._check_grant(
        revoke_queue.queue, revoke_queue.role, revoke_queue.privileges);
begin
    -- Lock the queue row first: a grant_queue at the same time waits for us, so the
    -- restricted flag always matches whether grants remain.
    perform 1 from pgclaim.queues as q where q.queue = revoke_queue.queue for update;
    delete from pgclaim.queue_grants as g
    where g.queue = revoke_queue.queue and g.grantee = v_role
      and g.privilege = any(revoke_queue.privileges);
    update pgclaim.queues as q set restricted = false
    where q.queue = revoke_queue.queue and q.restricted
      and not exists (select from pgclaim.queue_grants as g where g.queue = q.queue);
    return pgclaim._granted(revoke_queue.queue, v_role);
end;
$fn$;

comment on function pgclaim.revoke_queue(text, text, text[]) is
'Revokes privileges that grant_queue gave a role on a queue; without grants left the '
'queue is open again. Returns the role''s privileges on it. Raises PC001, 42704, 22004, '
'22023.';
