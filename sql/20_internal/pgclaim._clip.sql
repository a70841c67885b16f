-- pgclaim._clip(value, max_bytes): value cut to at most max_bytes bytes on a
-- character boundary, with a note of how much was cut. Error texts are kept
-- whatever their size (a failing worker must be able to report), but only so much.
-- Returns: text (null for null). Raises: nothing. Tables: none.
create or replace function pgclaim._clip(value text, max_bytes integer)
returns text
language plpgsql
immutable
set search_path = pg_catalog, pg_temp
as $fn$
declare
    v_bytes integer := pg_catalog.octet_length(value);
    v_note text;
    v_cut text;
begin
    if value is null or v_bytes <= max_bytes then
        return value;
    end if;
    v_note := pg_catalog.format(' [cut: %s bytes]', v_bytes);
    -- A character takes 1 to 4 bytes: shorten until the bytes fit.
    v_cut := pg_catalog.left(value, max_bytes - pg_catalog.octet_length(v_note));
    while pg_catalog.octet_length(v_cut) + pg_catalog.octet_length(v_note) > max_bytes loop
        v_cut := pg_catalog.left(v_cut, pg_catalog.length(v_cut) - greatest(
            (pg_catalog.octet_length(v_cut) + pg_catalog.octet_length(v_note) - max_bytes) / 4,
            1));
    end loop;
    return v_cut || v_note;
end;
$fn$;

comment on function pgclaim._clip(text, integer) is
'Internal: value cut to at most max_bytes bytes, with a note of its size.';
