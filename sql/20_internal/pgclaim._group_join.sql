-- pgclaim._group_join(queue, group_key): a record is about to join this FIFO
-- group. When the group has no unfinished record, this call makes its row in
-- pgclaim.groups and the record will be the head; otherwise it updates that row
-- (changing nothing) and the record will wait behind the head. The update holds
-- the row until this transaction ends: _promote, which handles the head's
-- finishing, takes the row first and so sees the records this transaction adds
-- to pgclaim.waiting (in REPEATABLE READ it fails with 40001 instead of missing
-- them). If the group's last record finishes meanwhile, it tries again.
-- Returns: true when the record must wait (the group has a head), false when it
-- is the head. Raises: nothing. Tables: groups (insert, update).
create or replace function pgclaim._group_join(queue text, group_key text)
returns boolean
language plpgsql
volatile
set search_path = pg_catalog, pg_temp
as $fn$
declare
    v_head boolean;
begin
    loop
        insert into pgclaim.groups as g (queue, group_key)
        values (_group_join.queue, _group_join.group_key)
        on conflict on constraint groups_pkey do nothing;
        v_head := found;
        exit when v_head;
        update pgclaim.groups as g set group_key = g.group_key
        where g.queue = _group_join.queue and g.group_key = _group_join.group_key;
        exit when found;
    end loop;
    return not v_head;
end;
$fn$;

comment on function pgclaim._group_join(text, text) is
'Internal: makes or holds the row of a FIFO group; true when the group has a head already.';
