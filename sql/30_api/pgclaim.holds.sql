-- pgclaim.holds(id, lease_token): whether the claim that handed out lease_token
-- for record id is still live: the record is running under that very token and
-- its lease has not expired (pgclaim._now()). A true answer also locks the
-- record's row (FOR KEY SHARE) until the caller's transaction ends, so the claim
-- cannot be taken back in between (the claim sweep and reclaim_orphans skip
-- locked rows, cancel waits): writes made in that transaction after a true
-- answer commit only while the claim holds. A false answer locks nothing.
-- The token is the proof (64 random bits): any role that has it may ask, and the
-- answer says nothing about records it does not name (docs/security.md).
-- Returns: boolean. Raises: 22004 null id or lease_token. Waits at most 5 s for
-- the row lock (55P03). Tables: records (read, row lock).
create or replace function pgclaim.holds(id bigint, lease_token bigint)
returns boolean
language plpgsql
volatile
security definer
set search_path = pg_catalog, pg_temp
set lock_timeout = '5s'
as $fn$
begin
    if holds.id is null or holds.lease_token is null then
        raise exception using
            errcode = '22004',
            message = 'pgclaim: id and lease_token must not be null';
    end if;
    -- One primary-key probe; status compared as text so that the planner never
    -- reads the partial index of running records instead.
    perform from pgclaim.records as r
    where r.id = holds.id
      and r.status::text = 'running'
      and r.lease_token = holds.lease_token
      and r.lease_until > pgclaim._now()
    for key share of r;
    return found;
end;
$fn$;

comment on function pgclaim.holds(bigint, bigint) is
'True while the claim of record id under lease_token is live (running, same token, lease '
'not expired); then locks the record against being taken back until the transaction ends.';
