/**
 * One worker process for the engine benchmark. argv: <engine> <redisUrl> <concurrency> <mode> <count>
 *   mode drain:   process queued no-op jobs until <count> have completed (in total, over every worker process
 *                 of the run); report the wall time from the first start to the last settle
 *   mode latency: record enqueue→start delays (payload.t) until <count> jobs have completed; report them
 * Prints {"ready":true} once the worker runs, and one JSON line with the figures when done.
 */
import { performance } from 'node:perf_hooks';
import v8 from 'node:v8';
import { Redis } from 'ioredis';
import { peakRssMiB, preciseNowMs } from './machine.js';

const [engine, redisUrl, concurrencyText, mode, countText] = process.argv.slice(2) as [
  string,
  string,
  string,
  string,
  string,
];
const concurrency = Number(concurrencyText);
const count = Number(countText);
const delays: number[] = [];
let firstStart = 0;
let cpuAtStart: NodeJS.CpuUsage | undefined;
let eluAtStart: ReturnType<typeof performance.eventLoopUtilization> | undefined;

function onStart(data: { t?: number } | undefined): void {
  if (firstStart === 0) {
    firstStart = Date.now();
    cpuAtStart = process.cpuUsage();
    eluAtStart = performance.eventLoopUtilization();
  }
  if (mode === 'latency' && data?.t) delays.push(preciseNowMs() - data.t);
}

/** CPU time of this process since the first job started (user + system, and system alone), in ms. */
function cpuMsSinceStart(): { total: number; system: number } {
  const cpu = process.cpuUsage(cpuAtStart);
  return { total: (cpu.user + cpu.system) / 1000, system: cpu.system / 1000 };
}

/**
 * Waits until `count` jobs have completed in total, by every worker process of the run (the counter is
 * read from Redis), then reports: wall time from this process's first job, its CPU time, and the absolute
 * times of its first job and of the end (a fleet run spans from the earliest start to the latest end).
 */
async function waitAndReport(
  completedSoFar: () => Promise<number>,
  stop: () => Promise<void>,
): Promise<void> {
  while ((await completedSoFar()) < count) await new Promise((r) => setTimeout(r, 5));
  const doneAt = Date.now();
  const cpuMs = cpuMsSinceStart();
  await stop();
  const report = {
    wall_ms: doneAt - firstStart,
    cpu_ms: cpuMs.total,
    cpu_sys_ms: cpuMs.system,
    first_start_at: firstStart,
    done_at: doneAt,
    delays,
    rss_mib: peakRssMiB(process.pid),
    young_generation_mib:
      (v8.getHeapSpaceStatistics().find((space) => space.space_name === 'new_space')?.space_size ?? 0) /
      2 ** 20,
    elu: performance.eventLoopUtilization(eluAtStart).utilization,
  };
  process.stdout.write(`${JSON.stringify(report)}\n`);
}

/** Drain mode: says it is ready, then waits for "go" on stdin (the parent starts a whole fleet at once). */
async function readyAndGo(): Promise<void> {
  process.stdout.write('{"ready":true}\n');
  if (mode !== 'drain') return;
  await new Promise<void>((resolve) => {
    let input = '';
    process.stdin.on('data', (chunk: Buffer) => {
      input += chunk.toString();
      if (input.includes('go')) resolve();
    });
  });
  process.stdin.pause();
}

// Each engine is imported only in its own child, so neither pays for the other's code in its RSS.
if (engine === 'bananas') {
  // The built engine (dist/, what `bananas worker start` runs; bench/engine.ts builds it first), as BullMQ
  // runs from its built package. The path is computed so that type checking does not need dist/.
  const dist = '../dist/core/';
  // As `bananas worker start` does (bin/run.js): V8's young generation capped at 16 MiB.
  const { capYoungGeneration } = (await import(
    `${dist}../cli/young-generation.js`
  )) as typeof import('../src/cli/young-generation.js');
  capYoungGeneration();
  const { createLogger } = (await import(`${dist}logger.js`)) as typeof import('../src/core/logger.js');
  const { Keys } = (await import(`${dist}keys.js`)) as typeof import('../src/core/keys.js');
  const { Worker } = (await import(`${dist}worker.js`)) as typeof import('../src/core/worker.js');
  const redis = new Redis(redisUrl);
  const keys = new Keys();
  const worker = new Worker({
    redisUrl,
    concurrency,
    handlers: { noop: (job) => onStart(job.data as { t?: number }) },
    logger: createLogger({ level: 'silent' }),
  });
  if (mode === 'drain') await readyAndGo();
  await worker.start();
  if (mode !== 'drain') await readyAndGo();
  await waitAndReport(
    async () => Number((await redis.hget(keys.stats, 'completed')) ?? 0),
    async () => {
      await worker.stop();
      redis.disconnect();
    },
  );
} else {
  const { Worker: BullWorker } = await import('bullmq');
  const url = new URL(redisUrl);
  const redis = new Redis(redisUrl);
  const worker = new BullWorker(
    'bench',
    async (job) => {
      onStart(job.data as { t?: number });
    },
    { connection: { host: url.hostname, port: Number(url.port) }, concurrency, autorun: false },
  );
  await worker.waitUntilReady();
  if (mode === 'drain') await readyAndGo();
  void worker.run();
  if (mode !== 'drain') await readyAndGo();
  // BullMQ keeps completed jobs (removeOnComplete is off by default) in this sorted set.
  await waitAndReport(
    () => redis.zcard('bull:bench:completed'),
    async () => {
      await worker.close();
      redis.disconnect();
    },
  );
}
process.exit(0);
