-- pgclaim._lease_token(): a new lease token, 64 random bits from the server's
-- strong random source (gen_random_uuid), so that a token cannot be guessed from
-- another one. Tests may replace this function, like the clock.
-- Returns: bigint. Raises: nothing. Tables: none.
create or replace function pgclaim._lease_token()
returns bigint
language plpgsql
volatile
set search_path = pg_catalog, pg_temp
as $fn$
declare
    v_hex text := pg_catalog.replace(pg_catalog.gen_random_uuid()::text, '-', '');
begin
    -- Hex digits 13 (the version) and 17 (the variant) of a v4 uuid are not random.
    return ('x' || pg_catalog.substr(v_hex, 1, 12) || pg_catalog.substr(v_hex, 14, 3)
        || pg_catalog.substr(v_hex, 18, 1))::bit(64)::bigint;
end;
$fn$;

comment on function pgclaim._lease_token() is
'Internal: a new lease token of 64 random bits.';
