-- pgclaim._notify(queue): wakes the workers listening for queue: the one place
-- that names the channel, pgclaim_<queue> (the Python client's _sql.channel
-- mirrors it to LISTEN). PostgreSQL folds a transaction's repeated notifications
-- of one channel into one. Anyone may LISTEN or NOTIFY on any channel: a
-- notification carries nothing and only prompts a claim (docs/security.md).
-- Returns: nothing. Raises: nothing. Tables: none.
create or replace function pgclaim._notify(queue text)
returns void
language plpgsql
volatile
set search_path = pg_catalog, pg_temp
as $fn$
begin
    perform pg_catalog.pg_notify('pgclaim_' || _notify.queue, '');
end;
$fn$;

comment on function pgclaim._notify(text) is
'Internal: notifies channel pgclaim_<queue>.';
