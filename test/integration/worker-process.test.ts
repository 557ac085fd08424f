/**
 * `bananas worker start` as real processes: SIGKILL mid-job (lease recovery by another worker),
 * SIGTERM with a short grace period, and a Redis restart under a running worker. Each test runs its
 * own redis-server.
 */
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { Queue } from '../../src/core/queue.js';
import { freshPrefix, rawClient, waitFor } from '../helpers/context.js';
import { cleanEnv, snapshotBuild, startCli, type CliProcess, type SnapshotBuild } from '../helpers/cli.js';
import { RedisServer } from '../helpers/redis-server.js';

const HANDLERS = 'test/fixtures/handlers/recording.mjs';
const MEMORY_HANDLERS = 'test/fixtures/handlers/memory.mjs';

let server: RedisServer;
let redis: Redis;
let prefix: string;
let queue: Queue;
const processes: CliProcess[] = [];

let build: SnapshotBuild;

beforeAll(async () => {
  build = await snapshotBuild();
});

afterAll(() => build.remove());

beforeEach(async () => {
  server = await RedisServer.start();
  redis = rawClient(server.url);
  redis.on('error', () => undefined);
  prefix = freshPrefix();
  queue = new Queue(redis, { prefix });
});

afterEach(async () => {
  for (const p of processes.splice(0)) {
    if (p.child.exitCode === null) p.child.kill('SIGKILL');
  }
  redis.disconnect();
  await server.destroy();
});

/** Waits until the result hash of job `id` says completed. */
function completed(id: string, what: string, timeoutMs = 15_000): Promise<boolean> {
  return waitFor(
    async () => (await redis.hget(queue.keys.result(id), 'status')) === 'completed',
    timeoutMs,
    what,
  );
}

function worker(
  args: string[] = [],
  { handlers = HANDLERS, env = {} }: { handlers?: string; env?: Record<string, string> } = {},
): CliProcess {
  const p = startCli(
    build.bin,
    ['worker', 'start', '--handlers', handlers, '--prefix', prefix, '--log-format', 'json', ...args],
    {
      env: cleanEnv({ REDIS_URL: server.url, TEST_REDIS_URL: server.url, TEST_PREFIX: prefix, ...env }),
      timeoutMs: 120_000,
    },
  );
  processes.push(p);
  return p;
}

describe('worker processes', () => {
  it('a worker killed with SIGKILL mid-job has its jobs run again by another worker after the lease', async () => {
    const jobs = await queue.enqueueBatch(
      Array.from({ length: 4 }, () => ({ name: 'sleepy', payload: { ms: 60_000 } })),
    );
    const first = worker(['--lease', '2s', '--concurrency', '4']);
    await waitFor(async () => (await redis.llen(`${prefix}test:started`)) === 4, 15_000, 'jobs to start');
    expect(await redis.llen(queue.keys.processing)).toBe(4);
    first.child.kill('SIGKILL');
    await first.done;
    const killedAt = Date.now();
    // The second worker runs short jobs: rewrite nothing, just let it take the recovered ids.
    const second = worker(['--lease', '2s', '--concurrency', '4']);
    await second.waitForOutput('Worker starting');
    const startingAt = Date.now(); // a busy machine can take seconds to start a process: not counted
    await second.waitForOutput('Lease expired; job returned to its queue');
    // The lease ran out 2 s after the kill at the latest; from then, or from the second worker's start,
    // one recovery sweep (every second), with slack.
    const recoveredAfter = Date.now() - Math.max(killedAt + 2000, startingAt);
    await waitFor(
      async () => (await redis.llen(`${prefix}test:started`)) === 8,
      15_000,
      'jobs to start again',
    );
    const started = await redis.lrange(`${prefix}test:started`, 0, -1);
    for (const job of jobs.enqueued) expect(started.filter((id) => id === job.id)).toHaveLength(2);
    expect(recoveredAfter).toBeLessThan(5000);
    expect(await redis.llen(queue.keys.processing)).toBe(4); // the second worker holds them now
  });

  it('on SIGTERM puts unfinished jobs back in their queue, exits 0, and they run later', async () => {
    const job = await queue.enqueue('sleepy', { ms: 10_000 });
    const w = worker(['--shutdown-timeout', '1s']);
    await waitFor(async () => (await redis.llen(`${prefix}test:started`)) === 1, 15_000, 'job start');
    w.child.kill('SIGTERM');
    expect((await w.done).code).toBe(0);
    expect(w.output()).toContain('Shutdown timeout: unfinished jobs returned to their queue');
    expect(await redis.lrange(queue.keys.queue('normal'), 0, -1)).toEqual([job.id]);
    expect(await redis.llen(queue.keys.processing)).toBe(0);
    // A later worker runs it to completion.
    await redis.set(
      queue.keys.job(job.id),
      (await redis.get(queue.keys.job(job.id)))!.replace('10000', '10'),
    );
    worker();
    await completed(job.id, 'rerun');
  });

  it('recovers by itself when Redis stops and comes back', async () => {
    const w = worker();
    await w.waitForOutput('Worker starting');
    const before = await queue.enqueue('quick');
    await completed(before.id, 'first');
    await server.stop();
    await w.waitForOutput('Redis connection error - retrying with backoff');
    await new Promise((r) => setTimeout(r, 500));
    await server.spawn();
    await w.waitForOutput('Redis connection recovered', 20_000);
    const after = await queue.enqueue('quick');
    await completed(after.id, 'after', 20_000);
    expect(w.child.exitCode).toBeNull();
    // The outage was not mistaken for corruption or missing documents.
    expect(await redis.llen(queue.keys.dead)).toBe(0);
  });

  it('stops on SIGTERM even while Redis is unreachable', async () => {
    const w = worker(['--shutdown-timeout', '1s']);
    await w.waitForOutput('Worker starting');
    await waitFor(async () => (await redis.zcard(queue.keys.workers)) === 1, 15_000, 'registration');
    await server.stop();
    await w.waitForOutput('Redis connection error - retrying with backoff');
    const signalledAt = Date.now();
    w.child.kill('SIGTERM');
    expect((await w.done).code).toBe(0);
    expect(Date.now() - signalledAt).toBeLessThan(12_000);
  });

  it('logs System metrics with the runbook fields on its interval, as JSON lines', async () => {
    const w = worker(['--metrics-interval', '300ms']);
    const job = await queue.enqueue('quick');
    await completed(job.id, 'job');
    await w.waitForOutput(/"jobs_completed":1/);
    const line = w
      .output()
      .split('\n')
      .filter((l) => l.includes('System metrics') && l.includes('"jobs_completed":1'))[0];
    const metrics = JSON.parse(line as string) as Record<string, unknown>;
    for (const field of [
      'jobs_processed',
      'jobs_completed',
      'jobs_failed',
      'avg_duration_ms',
      'worker_utilization',
      'error_rate',
      'uptime',
    ]) {
      expect(metrics).toHaveProperty(field);
    }
    expect(metrics.error_rate).toBe(0);
  });

  it('a second signal exits at once, leaving the job to its lease', async () => {
    const job = await queue.enqueue('sleepy', { ms: 60_000 });
    const w = worker(['--shutdown-timeout', '60s', '--lease', '2s']);
    await waitFor(async () => (await redis.llen(`${prefix}test:started`)) === 1, 15_000, 'job start');
    w.child.kill('SIGTERM');
    await w.waitForOutput('Worker stopping');
    const secondAt = Date.now();
    w.child.kill('SIGTERM');
    expect((await w.done).code).toBe(143);
    expect(Date.now() - secondAt).toBeLessThan(2000);
    expect(await redis.lrange(queue.keys.processing, 0, -1)).toEqual([job.id]);
  });

  it('keeps V8 young generation at 16 MiB under load (V8 alone grows it further)', async (ctx) => {
    const CAP = 16 * 2 ** 20;
    /** The largest young generation that a job allocating like a busy worker saw in a worker process. */
    const largest = async (env: Record<string, string>): Promise<number> => {
      const w = worker([], { handlers: MEMORY_HANDLERS, env });
      await w.waitForOutput('Worker starting');
      const job = await queue.enqueue('churn', { chunks: 400 });
      await completed(job.id, 'churn job', 25_000);
      w.child.kill('SIGTERM');
      expect((await w.done).code).toBe(0);
      const result = JSON.parse((await redis.hget(queue.keys.result(job.id), 'result')) ?? '{}') as {
        largest_young_generation: number;
      };
      return result.largest_young_generation;
    };
    // The same work without the cap: V8's own maximum on this machine.
    const uncapped = await largest({ BANANAS_YOUNG_GENERATION_CAP: 'off' });
    if (uncapped <= CAP) ctx.skip(); // V8's maximum here is within the cap: nothing to show
    expect(await largest({})).toBe(CAP);
  }, 60_000);

  it('never prints the Redis password', async () => {
    await server.destroy();
    server = await RedisServer.start({ args: ['--requirepass', 'pw-s3cret-123'] });
    redis.disconnect();
    redis = rawClient(`redis://:pw-s3cret-123@127.0.0.1:${server.port}`);
    queue = new Queue(redis, { prefix });
    const url = `redis://:pw-s3cret-123@127.0.0.1:${server.port}`;
    const p = startCli(
      build.bin,
      ['worker', 'start', '--handlers', HANDLERS, '--prefix', prefix, '--log-format', 'json'],
      { env: cleanEnv({ REDIS_URL: url, TEST_REDIS_URL: url, TEST_PREFIX: prefix }), timeoutMs: 120_000 },
    );
    processes.push(p);
    await p.waitForOutput('Worker starting');
    const job = await queue.enqueue('quick');
    await completed(job.id, 'job');
    p.child.kill('SIGTERM');
    expect((await p.done).code).toBe(0);
    expect(p.output()).toContain('127.0.0.1');
    expect(p.output()).not.toContain('pw-s3cret-123');
  });
});
