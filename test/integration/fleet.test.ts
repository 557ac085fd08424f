/**
 * A fleet of real worker processes (`bananas worker start`) on one Redis: a `gpu` pool (routing key gpu)
 * and a default pool, plus jobs for a route nobody serves. Every job runs exactly once, in a process of
 * its own pool, and never in the other; the unserved jobs stay queued untouched. `worker list` and
 * `queue stats` show the whole fleet: every worker with its routes, and the queues of every route.
 */
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Keys, type Priority } from '../../src/core/keys.js';
import { Queue } from '../../src/core/queue.js';
import {
  cleanEnv,
  runCli,
  snapshotBuild,
  startCli,
  type CliProcess,
  type SnapshotBuild,
} from '../helpers/cli.js';
import { freshPrefix, rawClient, testRedisUrl, waitFor } from '../helpers/context.js';

const HANDLERS = 'test/fixtures/handlers/recording.mjs';
const POOLS = { gpu: ['--routing-keys', 'gpu'], default: [] as string[] };
const PER_POOL = 2;
const JOBS = { gpu: 150, default: 150, video: 5 };

let build: SnapshotBuild;
let redis: Redis;
const processes: CliProcess[] = [];

beforeAll(async () => {
  build = await snapshotBuild();
  redis = rawClient();
});

afterAll(() => {
  for (const p of processes) if (p.child.exitCode === null) p.child.kill('SIGKILL');
  redis?.disconnect();
  build?.remove();
});

function startWorker(prefix: string, pool: keyof typeof POOLS): CliProcess {
  const worker = startCli(
    build.bin,
    [
      'worker',
      'start',
      '--handlers',
      HANDLERS,
      '--prefix',
      prefix,
      '--concurrency',
      '3',
      '--log-format',
      'json',
      ...POOLS[pool],
    ],
    {
      env: cleanEnv({
        REDIS_URL: testRedisUrl(),
        TEST_REDIS_URL: testRedisUrl(),
        TEST_PREFIX: prefix,
        TEST_POOL: pool,
      }),
      timeoutMs: 120_000,
    },
  );
  processes.push(worker);
  return worker;
}

async function cliJson<T>(prefix: string, args: string[]): Promise<T> {
  const result = await runCli(build.bin, [...args, '--json', '--prefix', prefix], {
    env: cleanEnv({ REDIS_URL: testRedisUrl() }),
  });
  expect(result.stderr).toBe('');
  expect([0, 5, 6]).toContain(result.code);
  return JSON.parse(result.stdout) as T;
}

interface Stats {
  ready: {
    total: number;
    queues: Array<{ key: string; routing_key: string; priority: string; depth: number }>;
  };
  workers: { live: number; stale: number; concurrency: number };
}

interface Workers {
  live: number;
  workers: Array<{
    pid: number;
    state: string;
    routing_keys: string[];
    concurrency: number;
    completed: number;
  }>;
}

describe('a fleet of worker processes with routing keys', () => {
  it('each pool runs only its own jobs, every job exactly once; worker list and queue stats show the whole fleet', async () => {
    const prefix = freshPrefix();
    const keys = new Keys(prefix);
    const queue = new Queue(redis, { prefix });
    const priorities: Priority[] = ['high', 'normal', 'low'];
    const ids: Record<keyof typeof JOBS, string[]> = { gpu: [], default: [], video: [] };
    for (const route of Object.keys(JOBS) as Array<keyof typeof JOBS>) {
      const { enqueued } = await queue.enqueueBatch(
        Array.from({ length: JOBS[route] }, (_, i) => ({
          name: 'record',
          payload: { ms: 5 },
          priority: priorities[i % 3],
          ...(route === 'default' ? {} : { routingKey: route }),
        })),
      );
      ids[route] = enqueued.map((job) => job.id);
    }

    // Before any worker: every route's queues are counted.
    const waiting = await cliJson<Stats>(prefix, ['queue', 'stats']);
    const depth = (stats: Stats, route: string) =>
      stats.ready.queues.filter((q) => q.routing_key === route).reduce((sum, q) => sum + q.depth, 0);
    expect(depth(waiting, 'gpu')).toBe(JOBS.gpu);
    expect(depth(waiting, 'default')).toBe(JOBS.default);
    expect(depth(waiting, 'video')).toBe(JOBS.video);
    expect(waiting.ready.total).toBe(JOBS.gpu + JOBS.default + JOBS.video);
    expect(waiting.workers.live).toBe(0);

    const fleet = (Object.keys(POOLS) as Array<keyof typeof POOLS>).flatMap((pool) =>
      Array.from({ length: PER_POOL }, () => ({ pool, process: startWorker(prefix, pool) })),
    );
    const poolOf = new Map(fleet.map((w) => [String(w.process.child.pid), w.pool]));

    await waitFor(
      async () => (await redis.llen(`${prefix}test:ran`)) >= JOBS.gpu + JOBS.default,
      60_000,
      'the gpu and default jobs to run',
    );
    await waitFor(async () => (await redis.llen(keys.processing)) === 0, 10_000, 'the last settlements');

    // A process slow to start may find its pool's work done already; it still registers.
    await waitFor(async () => (await redis.zcard(keys.workers)) === fleet.length, 30_000, 'every worker');
    // While the whole fleet is up: every worker, both routes, and the unserved route still waiting.
    const [listed, stats, health] = await Promise.all([
      cliJson<Workers>(prefix, ['worker', 'list']),
      cliJson<Stats>(prefix, ['queue', 'stats']),
      cliJson<{ checks: Array<{ name: string; status: string; message: string }> }>(prefix, ['health']),
    ]);
    // The route nobody serves is what health pages about, by name.
    const workersCheck = health.checks.find((c) => c.name === 'workers');
    expect(workersCheck?.status).toBe('critical');
    expect(workersCheck?.message).toMatch(/4 live workers, but none serves .*video.*\(5 jobs waiting\)/);
    expect(listed.live).toBe(fleet.length);
    expect(listed.workers.map((w) => w.pid).sort()).toEqual(fleet.map((w) => w.process.child.pid).sort());
    for (const worker of listed.workers) {
      expect(worker.state).toBe('live');
      expect(worker.concurrency).toBe(3);
      expect(worker.routing_keys).toEqual(poolOf.get(String(worker.pid)) === 'gpu' ? ['gpu'] : ['default']);
    }
    expect(stats.workers).toMatchObject({ live: fleet.length, stale: 0, concurrency: 3 * fleet.length });
    expect(depth(stats, 'gpu')).toBe(0);
    expect(depth(stats, 'default')).toBe(0);
    expect(depth(stats, 'video')).toBe(JOBS.video);

    for (const w of fleet) w.process.child.kill('SIGTERM');
    const exits = await Promise.all(fleet.map((w) => w.process.done));
    expect(exits.map((e) => e.code)).toEqual(fleet.map(() => 0));

    // Who ran what: every job once, in its own pool.
    const runs = (await redis.lrange(`${prefix}test:ran`, 0, -1)).map((line) => {
      const [pool, pid, id] = line.split(' ') as [string, string, string];
      return { pool, pid, id };
    });
    for (const run of runs) expect(poolOf.get(run.pid), `${run.id} ran in an unknown process`).toBe(run.pool);
    const ranIn = new Map(runs.map((r) => [r.id, r.pool]));
    expect(runs).toHaveLength(JOBS.gpu + JOBS.default);
    expect(ranIn.size).toBe(runs.length);
    for (const id of ids.gpu) expect(ranIn.get(id), id).toBe('gpu');
    for (const id of ids.default) expect(ranIn.get(id), id).toBe('default');
    for (const id of ids.video) expect(ranIn.has(id), id).toBe(false);
    // Completed once each, results stored; the unserved route untouched.
    const statuses = await Promise.all(
      [...ids.gpu, ...ids.default].map((id) => redis.hget(keys.result(id), 'status')),
    );
    expect(statuses.every((s) => s === 'completed')).toBe(true);
    const videoQueued = (
      await Promise.all(priorities.map((p) => redis.lrange(keys.queue(p, 'video'), 0, -1)))
    ).flat();
    expect(videoQueued.sort()).toEqual([...ids.video].sort());
  }, 90_000);
});
