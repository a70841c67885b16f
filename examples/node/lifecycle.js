// pgclaim's whole record lifecycle from Node.js with the `pg` package:
// create a queue, enqueue, claim a batch, complete, fail, retry.
//
//   npm ci && DATABASE_URL=postgresql://app@db/app node lifecycle.js
//
// Each step runs as the role that would run it in production, on its own login:
// ADMIN_URL (a member of pgclaim_admin) creates the queue, reads stats and retries,
// PRODUCER_URL (pgclaim_producer) enqueues, WORKER_URL (pgclaim_worker) claims and
// reports. A URL left out falls back to DATABASE_URL. Every call is one SQL function
// in named notation, outside any explicit transaction: a worker never keeps a
// transaction open while it works on a record. Running it again starts over: the
// queue example_emails is dropped first.
//
// bigint columns (ids, lease tokens) arrive as strings and are passed back as
// strings: lease tokens are random 64-bit numbers, beyond a JavaScript number.
"use strict";
const { Client } = require("pg");

const QUEUE = "example_emails";
const WORKER_ID = "example-worker-1";

function url(name) {
  const value = process.env[name] || process.env.DATABASE_URL;
  if (!value) throw new Error(`set ${name} or DATABASE_URL`);
  return value;
}

function say(role, text) {
  console.log(`[${role.padEnd(8)}] ${text}`);
}

// The one value a pgclaim function returns.
async function call(client, sql, params) {
  const { rows } = await client.query(sql, params);
  return Object.values(rows[0])[0];
}

async function claim(worker) {
  const { rows } = await worker.query(
    "select id, attempt, payload, lease_token from pgclaim.claim_batch(" +
      "queue => $1, worker_id => $2, batch_size => $3)",
    [QUEUE, WORKER_ID, 10],
  );
  say("worker", `claimed ${rows.length} record(s):`);
  for (const r of rows) {
    say("worker", `  id=${r.id} attempt=${r.attempt} payload=${JSON.stringify(r.payload)}`);
  }
  return rows;
}

async function stats(admin) {
  const { rows } = await admin.query(
    "select pending, running, completed, failed from pgclaim.queue_stats where queue = $1",
    [QUEUE],
  );
  const s = rows[0];
  say("admin", `queue_stats: pending=${s.pending} running=${s.running} ` +
    `completed=${s.completed} failed=${s.failed}`);
}

async function main() {
  const admin = new Client({ connectionString: url("ADMIN_URL") });
  const producer = new Client({ connectionString: url("PRODUCER_URL") });
  const worker = new Client({ connectionString: url("WORKER_URL") });
  await Promise.all([admin.connect(), producer.connect(), worker.connect()]);
  try {
    const old = await admin.query("select from pgclaim.queue_stats where queue = $1", [QUEUE]);
    if (old.rowCount > 0) {
      await admin.query("select pgclaim.drop_queue(queue => $1, force => true)", [QUEUE]);
      say("admin", `dropped the queue ${QUEUE} of an earlier run`);
    }
    await admin.query(
      "select pgclaim.create_queue(queue => $1, lease => '1 minute', max_attempts => 3," +
        " backoff_base => '1 second')",
      [QUEUE],
    );
    say("admin", `created queue ${QUEUE} (3 attempts, 1 s backoff)`);

    const payloads = ["ada@example.com", "bob@example.com", "eve@example.com"]
      .map((to) => JSON.stringify({ to }));
    const enqueued = await producer.query(
      "select pgclaim.enqueue_batch(queue => $1, payloads => $2::jsonb[]) as id",
      [QUEUE, payloads],
    );
    say("producer", `enqueued ids [${enqueued.rows.map((r) => r.id).join(", ")}]`);

    let batch = await claim(worker);
    const good = batch.filter((r) => r.payload.to !== "eve@example.com");
    const bad = batch.find((r) => r.payload.to === "eve@example.com");
    // Reports carry the lease tokens of the claim: a stale report is refused.
    let done = await call(
      worker,
      "select pgclaim.complete(worker_id => $1, ids => $2, lease_tokens => $3)",
      [WORKER_ID, good.map((r) => r.id), good.map((r) => r.lease_token)],
    );
    say("worker", `complete [${good.map((r) => r.id).join(", ")}] -> ${done}`);

    let status = await call(
      worker,
      "select pgclaim.fail(worker_id => $1, id => $2, error => $3," +
        " retry_after => '0 seconds', lease_token => $4)",
      [WORKER_ID, bad.id, "mailbox unavailable", bad.lease_token],
    );
    say("worker", `fail ${bad.id} (retry_after 0) -> ${status}`);

    const [again] = await claim(worker);
    status = await call(
      worker,
      "select pgclaim.fail(worker_id => $1, id => $2, error => $3," +
        " lease_token => $4, fatal => true)",
      [WORKER_ID, again.id, "mailbox does not exist", again.lease_token],
    );
    say("worker", `fail ${again.id} (fatal) -> ${status}`);
    await stats(admin);

    const retried = await call(admin, "select pgclaim.retry_failed(queue => $1)", [QUEUE]);
    say("admin", `retry_failed -> ${retried}`);

    batch = await claim(worker);
    done = await call(
      worker,
      "select pgclaim.complete(worker_id => $1, ids => $2, lease_tokens => $3)",
      [WORKER_ID, batch.map((r) => r.id), batch.map((r) => r.lease_token)],
    );
    say("worker", `complete [${batch.map((r) => r.id).join(", ")}] -> ${done}`);
    await stats(admin);
  } finally {
    await Promise.all([admin.end(), producer.end(), worker.end()]);
  }
}

main().catch((err) => {
  console.error(`error${err.code ? ` [${err.code}]` : ""}: ${err.message}`);
  process.exit(1);
});
