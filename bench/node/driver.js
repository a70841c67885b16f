// graphile-worker driver for the pgclaim benchmark suite.
//   node driver.js drain URL OPTIONS   print "ready", wait for "go" on stdin, process every queued
//                                      "noop" job (runOnce), print "done {rss}" and exit
//   node driver.js listen URL OPTIONS  print "ready", run a LISTENing worker; each "lat" job prints
//                                      "lat <ms>" (now - payload.t) when its task starts; "stop"
//                                      on stdin stops it
// OPTIONS is the JSON of the preset's `worker` section (concurrentJobs, maxPoolSize, localQueue,
// completeJobBatchDelay, failJobBatchDelay, ...): graphile-worker reads its batching options from
// the preset only. The suite prints the ones it used.
"use strict";
const { run, runOnce, Logger } = require("graphile-worker");
const readline = require("readline");

const [mode, connectionString, optionsJson] = process.argv.slice(2);
const options = JSON.parse(optionsJson || "{}");
const nowMs = () => performance.timeOrigin + performance.now();
const lines = readline.createInterface({ input: process.stdin });
const waitFor = (word) =>
  new Promise((resolve) => lines.on("line", (l) => { if (l.trim() === word) resolve(); }));

// An option graphile-worker does not know is a mistake here, not a warning to ignore.
const warn = console.warn;
console.warn = (...args) => {
  warn(...args);
  process.exit(2);
};

const common = {
  noHandleSignals: true,
  preset: {
    worker: { ...options, connectionString, logger: new Logger(() => () => {}) },
  },
};

async function main() {
  if (mode === "drain") {
    const go = waitFor("go");
    process.stdout.write("ready\n");
    await go;
    await runOnce({ ...common, taskList: { noop: async () => {} } });
    const rss = process.memoryUsage().rss / 1048576;
    process.stdout.write(`done ${JSON.stringify({ rss })}\n`);
  } else if (mode === "listen") {
    const stop = waitFor("stop");
    const runner = await run({
      ...common,
      taskList: {
        lat: async (payload) => {
          process.stdout.write(`lat ${nowMs() - payload.t * 1000}\n`);
        },
      },
    });
    process.stdout.write("ready\n");
    await stop;
    await runner.stop();
  } else {
    throw new Error(`unknown mode ${mode}`);
  }
  lines.close();
}

main().then(
  () => process.exit(0),
  (err) => { console.error(err); process.exit(1); },
);
