/**
 * Redis CPU of one worker cycle without a worker: dequeue a batch, then settle it as completed, over and
 * over, on a private redis-server; prints the scripts' cost per job from `INFO commandstats` (Redis's own
 * clock, so the figure does not depend on the client). Not part of npm test.
 *
 *   npx tsx bench/script-cost.ts [batch=25] [rounds=2000]
 */
import { Redis } from 'ioredis';
import { LocalRedisServer } from '../src/core/local-redis.js';
import { Queue } from '../src/core/queue.js';
import { completedDocument, seedNoopJobs } from './jobs.js';
import { commandStats, printMachine } from './machine.js';

const batch = Number(process.argv[2] ?? 25);
const rounds = Number(process.argv[3] ?? 2000);
const server = await LocalRedisServer.start();
const redis = new Redis(server.url);
const queue = new Queue(redis);
const lists = queue.listsServed(['high', 'normal', 'low'], ['default']);
const total = batch * rounds;
await seedNoopJobs(queue, total);

await redis.config('RESETSTAT');
let dequeueUsec = 0;
let finishUsec = 0;
for (let r = 0; r < rounds; r++) {
  const before = (await commandStats(redis)).get('evalsha')?.usec ?? 0;
  const entries = await queue.dequeue({ workerId: 'w1', leaseMs: 60_000, max: batch, lists });
  const mid = (await commandStats(redis)).get('evalsha')?.usec ?? 0;
  const now = new Date();
  await queue.finish(
    'w1',
    entries.map((e) => {
      return {
        id: e.id,
        action: 'complete' as const,
        document: completedDocument(e, now),
        documentTtlSeconds: queue.ttl.completedSeconds,
        result: { status: 'completed' as const, durationMs: 0 },
      };
    }),
    now,
  );
  const after = (await commandStats(redis)).get('evalsha')?.usec ?? 0;
  dequeueUsec += mid - before;
  finishUsec += after - mid;
}
printMachine();
console.log(
  `batch ${batch}, ${rounds} rounds: dequeue ${(dequeueUsec / total).toFixed(2)} µs/job, finish ${(finishUsec / total).toFixed(2)} µs/job, total ${((dequeueUsec + finishUsec) / total).toFixed(2)} µs/job`,
);
const stats = await commandStats(redis);
for (const [name, s] of [...stats.entries()].sort((a, b) => b[1].usec - a[1].usec)) {
  if (name === 'info' || name === 'evalsha' || s.calls < rounds) continue;
  console.log(
    `  ${name.padEnd(10)} ${(s.calls / total).toFixed(3).padStart(7)} calls/job ${(s.usec / total).toFixed(2).padStart(6)} µs/job`,
  );
}
redis.disconnect();
await server.destroy();
