-- pgclaim._slot(): the slot of queue_totals this transaction adds its counts to:
-- one that no other open transaction counts in, so that a transaction never waits
-- for another's counter row while it holds records (two reports sharing a slot row,
-- each holding records the other wants next, would deadlock). The slot is taken with
-- a transaction-level advisory lock (key pair 1885823793 'pgc1', slot), starting
-- from this backend's own (pid % 64) so that a backend mostly keeps its slot (a
-- transaction may come to hold two: each is its own alone). With all 64 taken (64
-- transactions counting at once) it waits for its backend's own slot.
-- Returns: smallint 0..63. Raises: nothing. Tables: none (advisory locks).
create or replace function pgclaim._slot()
returns smallint
language plpgsql
volatile
set search_path = pg_catalog, pg_temp
as $fn$
declare
    v_start integer := pg_catalog.pg_backend_pid() % 64;
    v_slot integer;
begin
    for i in 0..63 loop
        v_slot := (v_start + i) % 64;
        if pg_catalog.pg_try_advisory_xact_lock(1885823793, v_slot) then
            return v_slot::smallint;
        end if;
    end loop;
    perform pg_catalog.pg_advisory_xact_lock(1885823793, v_start);
    return v_start::smallint;
end;
$fn$;

comment on function pgclaim._slot() is
'Internal: the queue_totals slot this transaction counts in, one no other open '
'transaction holds (transaction-level advisory lock).';
