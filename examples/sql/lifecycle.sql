-- pgclaim's whole record lifecycle in plain SQL, run by psql:
-- create a queue, enqueue, claim a batch, complete, fail, retry.
--
--   psql -X -v ON_ERROR_STOP=1 -f examples/sql/lifecycle.sql postgresql://admin@db/app
--
-- Each step runs as the role that would run it in production, on its own login:
--   admin     (member of pgclaim_admin)    creates the queue, reads stats, retries
--   producer  (member of pgclaim_producer) enqueues
--   worker    (member of pgclaim_worker)   claims and reports outcomes
-- Give their URLs with -v producer=URL -v worker=URL -v admin=URL; a role left out
-- runs on the connection psql was started with (which then needs that role's rights).
-- A DBA makes such logins once, for example:
--   create role app_producer login in role pgclaim_producer;
--   create role app_worker login in role pgclaim_worker;
--   create role app_admin login in role pgclaim_admin;
-- Running it again starts over: the queue example_emails is dropped first.

\set QUIET on
\pset footer off
\set VERBOSITY terse
\if :{?producer} \else \set producer :DBNAME \endif
\if :{?worker} \else \set worker :DBNAME \endif
\if :{?admin} \else \set admin :DBNAME \endif

\echo '== admin: create the queue (3 attempts, 1 s backoff)'
\connect :admin
select exists (select from pgclaim.queue_stats where queue = 'example_emails') as again \gset
\if :again
select pgclaim.drop_queue(queue => 'example_emails', force => true) as dropped_records;
\endif
select 'example_emails' as created_queue
from pgclaim.create_queue(
    queue => 'example_emails', lease => '1 minute', max_attempts => 3,
    backoff_base => '1 second'
);

\echo '== producer: enqueue three records in one statement'
\connect :producer
select pgclaim.enqueue_batch(
    queue => 'example_emails',
    payloads => array[
        '{"to": "ada@example.com"}', '{"to": "bob@example.com"}', '{"to": "eve@example.com"}'
    ]::jsonb []
) as enqueued_id;

\echo '== worker: claim a batch of up to 10'
\connect :worker
-- The claim commits at once (no transaction stays open while the work is done);
-- the ids and lease tokens are kept in psql variables for the reports below.
create temporary table claimed as
select * from pgclaim.claim_batch(
    queue => 'example_emails', worker_id => 'example-worker-1', batch_size => 10
);
select id, attempt, payload from claimed order by id;
select
    pg_catalog.array_agg(id order by id) filter (where payload ->> 'to' <> 'eve@example.com')
    as ok_ids,
    pg_catalog.array_agg(lease_token order by id)
    filter (where payload ->> 'to' <> 'eve@example.com') as ok_tokens,
    pg_catalog.max(id) filter (where payload ->> 'to' = 'eve@example.com') as bad_id,
    pg_catalog.max(lease_token) filter (where payload ->> 'to' = 'eve@example.com')
    as bad_token
from claimed \gset

\echo '== worker: complete two of them (with their lease tokens)'
select pgclaim.complete(
    worker_id => 'example-worker-1', ids => :'ok_ids', lease_tokens => :'ok_tokens'
) as completed;

\echo '== worker: the third fails; retry_after 0 puts it back to pending at once'
select pgclaim.fail(
    worker_id => 'example-worker-1', id => :bad_id, error => 'mailbox unavailable',
    retry_after => '0 seconds', lease_token => :bad_token
) as new_status;

\echo '== worker: claim it again (attempt 2) and fail it for good (fatal)'
drop table claimed;
create temporary table claimed as
select * from pgclaim.claim_batch(
    queue => 'example_emails', worker_id => 'example-worker-1', batch_size => 10
);
select id, attempt, payload from claimed order by id;
select lease_token as bad_token from claimed \gset
select pgclaim.fail(
    worker_id => 'example-worker-1', id => :bad_id, error => 'mailbox does not exist',
    lease_token => :bad_token, fatal => true
) as new_status;

\echo '== admin: the queue now holds two completed records and one dead letter'
\connect :admin
select queue, pending, running, completed, failed from pgclaim.queue_stats
where queue = 'example_emails';

\echo '== admin: retry the failed record (attempts reset)'
select pgclaim.retry_failed(queue => 'example_emails') as retried;

\echo '== worker: claim it once more and complete it'
\connect :worker
create temporary table claimed as
select * from pgclaim.claim_batch(
    queue => 'example_emails', worker_id => 'example-worker-1', batch_size => 10
);
select id, attempt, payload from claimed order by id;
select
    pg_catalog.array_agg(id) as ids, pg_catalog.array_agg(lease_token) as tokens
from claimed \gset
select pgclaim.complete(
    worker_id => 'example-worker-1', ids => :'ids', lease_tokens => :'tokens'
) as completed;

\echo '== admin: every record completed'
\connect :admin
select queue, pending, running, completed, failed from pgclaim.queue_stats
where queue = 'example_emails';
