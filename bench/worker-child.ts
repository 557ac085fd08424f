/**
 * One worker process for the engine benchmark. argv: <engine> <redisUrl> <concurrency> <mode> <count>
 *   mode drain:   process <count> queued no-op jobs; report the wall time from the first start to the last settle
 *   mode latency: record enqueue→start delays (payload.t) of <count> jobs; report them
 * Prints one JSON line on stdout when done.
 */
import { Worker as BullWorker } from 'bullmq';
import { Redis } from 'ioredis';
import { createLogger } from '../src/core/logger.js';
import { Keys } from '../src/core/keys.js';
import { Worker } from '../src/core/worker.js';
import { peakRssMiB } from './machine.js';

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

function onStart(data: { t?: number } | undefined): void {
  if (firstStart === 0) firstStart = Date.now();
  if (mode === 'latency' && data?.t) delays.push(Date.now() - data.t);
}

function report(extra: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify({ ...extra, delays, rss_mib: peakRssMiB(process.pid) })}\n`);
}

if (engine === 'bananas') {
  const redis = new Redis(redisUrl);
  const keys = new Keys();
  const worker = new Worker({
    redisUrl,
    concurrency,
    handlers: { noop: (job) => onStart(job.data as { t?: number }) },
    logger: createLogger({ level: 'silent' }),
  });
  await worker.start();
  process.stdout.write('{"ready":true}\n');
  for (;;) {
    const completed = Number((await redis.hget(keys.stats, 'completed')) ?? 0);
    if (completed >= count) break;
    await new Promise((r) => setTimeout(r, 5));
  }
  const wallMs = Date.now() - firstStart;
  await worker.stop();
  redis.disconnect();
  report({ wall_ms: wallMs });
} else {
  const url = new URL(redisUrl);
  let completed = 0;
  let done: () => void = () => undefined;
  const finished = new Promise<void>((resolve) => (done = resolve));
  const worker = new BullWorker(
    'bench',
    async (job) => {
      onStart(job.data as { t?: number });
    },
    { connection: { host: url.hostname, port: Number(url.port) }, concurrency },
  );
  worker.on('completed', () => {
    completed++;
    if (completed >= count) done();
  });
  await worker.waitUntilReady();
  process.stdout.write('{"ready":true}\n');
  await finished;
  const wallMs = Date.now() - firstStart;
  await worker.close();
  report({ wall_ms: wallMs });
}
process.exit(0);
