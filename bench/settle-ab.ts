/**
 * Compares two versions of the settlement script (src/core/lua/finish-7.lua) on one private redis-server:
 * dequeues a batch, settles it as completed with version A, the next batch with version B, and so on,
 * and prints each version's Redis CPU per job as Redis measures it (`INFO commandstats`). Running both in
 * turns on one server cancels the machine's drift, which a comparison of two separate runs does not.
 * Both versions must settle every job (the run stops otherwise). Not part of npm test.
 *
 *   npx tsx bench/settle-ab.ts <a.lua> <b.lua> [batch=25] [rounds=2000]
 *   (give one file twice to see the noise: the two figures then differ by under 1 %)
 */
import { readFileSync } from 'node:fs';
import { Redis } from 'ioredis';
import { LocalRedisServer } from '../src/core/local-redis.js';
import { Queue } from '../src/core/queue.js';
import { completedDocument, seedNoopJobs } from './jobs.js';
import { sharedDefinitions, sharedPrelude } from '../src/core/scripts.js';
import { commandStats, printMachine } from './machine.js';

const [fileA, fileB] = process.argv.slice(2, 4);
if (!fileA || !fileB) {
  console.error('usage: npx tsx bench/settle-ab.ts <a.lua> <b.lua> [batch] [rounds]');
  process.exit(2);
}
const batch = Number(process.argv[4] ?? 25);
const rounds = Number(process.argv[5] ?? 2000);

const shared = sharedDefinitions(readFileSync('src/core/lua/_queue-keys.lua', 'utf8'));
const server = await LocalRedisServer.start();
const redis = new Redis(server.url);
const shas: string[] = [];
for (const file of [fileA, fileB]) {
  const body = readFileSync(file, 'utf8');
  shas.push((await redis.script('LOAD', `${sharedPrelude(shared, body)}\n${body}`)) as string);
}
const queue = new Queue(redis);
const keys = queue.keys;
const lists = queue.listsServed(['high', 'normal', 'low'], ['default']);
const total = batch * rounds;
await seedNoopJobs(queue, total);

const evalshaUsec = async () => (await commandStats(redis)).get('evalsha')?.usec ?? 0;
const spent = [0, 0];
for (let r = 0; r < rounds; r++) {
  const entries = await queue.dequeue({ workerId: 'w1', leaseMs: 60_000, max: batch, lists });
  const now = new Date();
  // The arguments Queue.finish sends for completions in the short form (see finish-7.lua's header).
  const args: Array<string | number> = [
    'w1',
    `${keys.prefix}job:`,
    `${keys.prefix}result:`,
    queue.ttl.resultCompletedSeconds,
    queue.ttl.resultFailedSeconds,
    2 * 3600,
    queue.ttl.completedSeconds,
    entries.length,
  ];
  for (const entry of entries) args.push(entry.id, 'done', completedDocument(entry, now), '', 0);
  args.push(now.toISOString());
  const version = r % 2;
  const before = await evalshaUsec();
  const replies = await redis.evalsha(
    shas[version]!,
    7,
    keys.processing,
    keys.leases,
    keys.leaseOwners,
    keys.scheduled,
    keys.dead,
    keys.stats,
    keys.statsMinute(Math.floor(now.getTime() / 60_000)),
    ...args,
  );
  spent[version]! += (await evalshaUsec()) - before;
  if (!Array.isArray(replies) || replies.some((reply) => reply !== 1))
    throw new Error(`${version === 0 ? fileA : fileB} did not settle every job: ${JSON.stringify(replies)}`);
}
printMachine();
const perJob = (usec: number) => (usec / (total / 2)).toFixed(2);
console.log(
  `batch ${batch}, ${rounds} rounds in turns: A ${fileA} ${perJob(spent[0]!)} µs/job, B ${fileB} ${perJob(spent[1]!)} µs/job (B/A ${(spent[1]! / spent[0]!).toFixed(3)})`,
);
redis.disconnect();
await server.destroy();
