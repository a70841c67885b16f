-- Privilege tests switch to the pgclaim roles inside their transaction and keep
-- asserting: those roles need to reach pgTAP's functions (test database only).
grant usage on schema tap to public;
-- ... and to the fixtures that remember values (keep, kept, id) across roles.
grant usage on schema pgclaim_test to public;
