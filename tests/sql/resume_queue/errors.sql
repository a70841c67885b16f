-- resume_queue: harmless on a running queue; PC001 and 22023 for bad names.
begin;
select plan(7);

select pgclaim.create_queue('rq');

select lives_ok(
    $$ select pgclaim.resume_queue('rq') $$, 'resuming a queue that is not paused succeeds'
);
select pgclaim_test.rejects(
    $$ select pgclaim.resume_queue('rq_missing') $$, 'PC001', 'resuming an unknown queue'
);
select pgclaim_test.rejects(
    $$ select pgclaim.resume_queue('') $$, '22023', 'resuming an empty queue name'
);
select pgclaim_test.rejects(
    $$ select pgclaim.resume_queue(null) $$, '22004', 'resuming a null queue name'
);

select * from finish();
rollback;
