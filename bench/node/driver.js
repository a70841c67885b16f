// graphile-worker driver for the pgclaim benchmark suite.
//   node driver.js drain URL CONCURRENCY   print "ready", wait for "go" on stdin, process every
//                                          queued "noop" job (runOnce), print "done"
//   node driver.js listen URL CONCURRENCY  print "ready", run a LISTENing worker; each "lat" job
//                                          prints "lat <ms>" (now - payload.t); "stop" on stdin ends it
"use strict";
const { run, runOnce } = require("graphile-worker");
const readline = require("readline");

const [mode, connectionString, concurrencyArg] = process.argv.slice(2);
const concurrency = Number(concurrencyArg || "1");
const nowMs = () => performance.timeOrigin + performance.now();
const lines = readline.createInterface({ input: process.stdin });
const waitFor = (word) =>
  new Promise((resolve) => lines.on("line", (l) => { if (l.trim() === word) resolve(); }));

const common = {
  connectionString,
  concurrency,
  maxPoolSize: concurrency + 1,
  noHandleSignals: true,
  pollInterval: 2000,
  logger: undefined,
};

async function main() {
  const { Logger } = require("graphile-worker");
  common.logger = new Logger(() => () => {});
  if (mode === "drain") {
    const go = waitFor("go");
    process.stdout.write("ready\n");
    await go;
    await runOnce({ ...common, taskList: { noop: async () => {} } });
    process.stdout.write("done\n");
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
