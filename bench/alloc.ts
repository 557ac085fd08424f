/**
 * Where a bananas worker allocates memory while it drains a queue: V8's sampling heap profiler, with the
 * objects the garbage collector has already freed counted too, run inside this process on the built
 * engine (dist/). Prints the bytes allocated per job by each site (function, and the function that
 * called it). What a worker allocates per job sets how often its young-generation collections stop it,
 * and Redis waits meanwhile. Not part of npm test.
 *
 *   npx tsx bench/alloc.ts [jobs=50000] [concurrency=50]
 *   SKIP_BUILD=1 npx tsx bench/alloc.ts   # runs dist/ as it is
 */
import { execFileSync } from 'node:child_process';
import { Session } from 'node:inspector/promises';
import { Redis } from 'ioredis';
import { LocalRedisServer } from '../src/core/local-redis.js';
import { Queue } from '../src/core/queue.js';
import { seedNoopJobs } from './jobs.js';
import { printMachine } from './machine.js';

const jobs = Number(process.argv[2] ?? 50_000);
const concurrency = Number(process.argv[3] ?? 50);

interface ProfileNode {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children: ProfileNode[];
}

if (process.env.SKIP_BUILD !== '1')
  execFileSync(process.execPath, ['scripts/build.mjs'], { stdio: 'inherit' });
// The built engine, as `bananas worker start` runs it; the path is computed so type checking does not
// need dist/.
const dist = '../dist/core/';
const { createLogger } = (await import(`${dist}logger.js`)) as typeof import('../src/core/logger.js');
const { Worker } = (await import(`${dist}worker.js`)) as typeof import('../src/core/worker.js');

const server = await LocalRedisServer.start();
const redis = new Redis(server.url);
const queue = new Queue(redis);
await seedNoopJobs(queue, jobs);
const worker = new Worker({
  redisUrl: server.url,
  concurrency,
  handlers: { noop: () => undefined },
  logger: createLogger({ level: 'silent' }),
});

const session = new Session();
session.connect();
await session.post('HeapProfiler.enable');
await session.post('HeapProfiler.startSampling', {
  samplingInterval: 256,
  includeObjectsCollectedByMajorGC: true,
  includeObjectsCollectedByMinorGC: true,
});
const started = Date.now();
await worker.start();
while (Number((await redis.hget(queue.keys.stats, 'completed')) ?? 0) < jobs)
  await new Promise((resolve) => setTimeout(resolve, 5));
const wallMs = Date.now() - started;
const { profile } = (await session.post('HeapProfiler.stopSampling')) as unknown as {
  profile: { head: ProfileNode };
};
await worker.stop();
session.disconnect();

const bySite = new Map<string, number>();
let total = 0;
const frameName = (node: ProfileNode): string => {
  const { functionName, url, lineNumber } = node.callFrame;
  return `${functionName || '(anonymous)'} ${url.split('/').slice(-2).join('/')}:${lineNumber + 1}`;
};
const walk = (node: ProfileNode, caller: string): void => {
  const name = frameName(node);
  if (node.selfSize > 0) {
    const site = `${name}  <-  ${caller}`;
    bySite.set(site, (bySite.get(site) ?? 0) + node.selfSize);
    total += node.selfSize;
  }
  for (const child of node.children) walk(child, name);
};
walk(profile.head, '');

printMachine();
console.log(
  `${jobs} no-op jobs, concurrency ${concurrency}, in ${wallMs} ms (the sampler slows the worker down); ` +
    `${Math.round(total / jobs)} bytes allocated per job (sampled, start-up included)`,
);
for (const [site, bytes] of [...bySite].sort((a, b) => b[1] - a[1]).slice(0, 25))
  console.log(`${String(Math.round(bytes / jobs)).padStart(7)} B/job  ${site}`);
redis.disconnect();
await server.destroy();
