/**
 * Fault injection: real worker processes, a private redis-server per scenario, then the invariant:
 * every acknowledged job completes (duplicates counted and reported), and no id is left anywhere.
 * Scenario 5 kills the operator's `dlq requeue` instead: every dead job must be in exactly one place.
 * Run with `npm run test:faults` (FAULTS_SCALE=0.2 for a quicker, smaller run).
 */
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createRedis } from '../../src/core/connection.js';
import { Keys } from '../../src/core/keys.js';
import { Queue, type EnqueueRequest } from '../../src/core/queue.js';
import { cleanEnv, snapshotBuild, startCli, type CliProcess, type SnapshotBuild } from '../helpers/cli.js';
import { waitFor } from '../helpers/context.js';
import { auditDeadLetterRequeue, seedDeadJobs } from '../helpers/dead-letters.js';
import { RedisServer } from '../helpers/redis-server.js';
import { deadJobDocument } from '../helpers/seed.js';
import {
  printResults,
  report,
  RunLog,
  startWorker,
  tally,
  waitAllCompleted,
  type Placement,
} from './harness.js';

const SCALE = Number(process.env.FAULTS_SCALE ?? 1);
const keys = new Keys();
let build: SnapshotBuild;
const cleanups: Array<() => Promise<void> | void> = [];
const workers: CliProcess[] = [];

beforeAll(async () => {
  build = await snapshotBuild();
});

afterEach(async () => {
  for (const w of workers.splice(0)) if (w.child.exitCode === null) w.child.kill('SIGKILL');
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

afterAll(() => {
  build.remove();
  printResults();
});

async function setup(serverArgs: string[] = []) {
  const server = await RedisServer.start({ args: serverArgs });
  const redis = new Redis(server.url, { maxRetriesPerRequest: null });
  redis.on('error', () => undefined);
  const runs = new RunLog();
  cleanups.push(
    () => runs.remove(),
    () => server.destroy(),
    () => redis.disconnect(),
  );
  return { server, redis, runs, queue: new Queue(redis) };
}

function work(n: number, payload = { min_ms: 1, max_ms: 20 }): EnqueueRequest[] {
  return Array.from({ length: n }, () => ({ name: 'work', payload }));
}

async function enqueueAll(queue: Queue, requests: EnqueueRequest[]): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < requests.length; i += 1000) {
    const { enqueued } = await queue.enqueueBatch(requests.slice(i, i + 1000));
    ids.push(...enqueued.map((j) => j.id));
  }
  return ids;
}

/** Starts a worker process on the built CLI (see startWorker); afterEach kills it if it still runs. */
function runWorker(redisUrl: string, runs: RunLog, args?: string[]): CliProcess {
  const worker = startWorker(build.bin, redisUrl, runs, args);
  workers.push(worker);
  return worker;
}

/** Records a scenario's row of the results table: jobs lost (not completed) and misplaced, from `state`. */
function record(
  scenario: string,
  jobs: number,
  state: Placement,
  duplicated: number,
  recoveryMs: number,
): void {
  report({
    scenario,
    jobs,
    lost: state.notCompleted.length,
    duplicated,
    misplaced: state.referenced.size,
    recovery_ms: recoveryMs,
  });
}

describe('fault injection', () => {
  it('1. SIGKILL a worker mid-run: another worker completes everything within the lease', async () => {
    const { redis, runs, queue, server } = await setup();
    const n = Math.round(10_000 * SCALE);
    const ids = await enqueueAll(queue, work(n));
    const victim = runWorker(server.url, runs, ['--concurrency', '50', '--lease', '5s']);
    await waitFor(() => tally(runs, ids).neverRan < n * 0.7, 60_000, '30 % of the jobs');
    victim.child.kill('SIGKILL');
    await victim.done;
    const killedAt = Date.now();
    const heldAtKill = await redis.llen(keys.processing);
    runWorker(server.url, runs, ['--concurrency', '50', '--lease', '5s']);
    await waitFor(
      async () => (await redis.zcard(keys.leases)) === 0 || (await redis.llen(keys.processing)) < heldAtKill,
      30_000,
      'recovery',
    );
    await waitFor(
      async () => {
        const owners = await redis.hvals(keys.leaseOwners);
        return owners.every((o) => !o.includes(`:${victim.child.pid}:`));
      },
      30_000,
      "the killed worker's jobs to be recovered",
    );
    const recoveryMs = Date.now() - killedAt;
    const state = await waitAllCompleted(redis, keys, ids, 120_000);
    const { neverRan, duplicated } = tally(runs, ids);
    record('SIGKILL a worker (lease 5 s)', n, state, duplicated, recoveryMs);
    expect(state.notCompleted).toEqual([]);
    expect(state.referenced.size).toBe(0);
    expect(neverRan).toBe(0);
    // Only jobs the victim held when it died may run twice.
    expect(duplicated).toBeLessThanOrEqual(heldAtKill);
    expect(recoveryMs).toBeLessThanOrEqual(5000 + 1500);
  });

  it('2. SIGKILL Redis (AOF, appendfsync always) and restart it: no acknowledged job is lost', async () => {
    const { server, redis, runs } = await setup(['--appendonly', 'yes', '--appendfsync', 'always']);
    const n = Math.round(3000 * SCALE);
    const worker = runWorker(server.url, runs, ['--concurrency', '20', '--log-level', 'info']);
    await worker.waitForOutput('Worker starting');
    // A producer that gives up at once on errors: only acknowledged enqueues count.
    const producer = createRedis({ url: server.url, mode: 'fail-fast' });
    const producerQueue = new Queue(producer);
    cleanups.push(() => producer.disconnect());
    const acked: string[] = [];
    let killed = false;
    let restartedAt = 0;
    for (let i = 0; i < n; i++) {
      if (i === Math.floor(n / 2)) {
        server.signal('SIGKILL');
        killed = true;
        await new Promise((r) => setTimeout(r, 300));
        await server.spawn();
        restartedAt = Date.now();
        producer.disconnect();
        await producer.connect().catch(() => undefined);
      }
      try {
        const job = await producerQueue.enqueue('work', { min_ms: 1, max_ms: 5 });
        acked.push(job.id);
      } catch {
        // not acknowledged: the caller would retry; it is not counted
      }
    }
    expect(killed).toBe(true);
    await worker.waitForOutput('Redis connection recovered', 60_000);
    const state = await waitAllCompleted(redis, keys, acked, 120_000);
    const { duplicated } = tally(runs, acked);
    record('SIGKILL Redis (AOF always) + restart', acked.length, state, duplicated, Date.now() - restartedAt);
    expect(state.notCompleted).toEqual([]);
    expect(state.referenced.size).toBe(0);
    // With every write on disk before it is acknowledged, a restart causes no second run: settlements
    // in flight are resent, and jobs of a dequeue whose reply was lost are handed back unstarted.
    expect(duplicated).toBe(0);
    expect(worker.output()).toContain('Redis connection error - retrying with backoff');
  });

  it('3. freeze Redis (SIGSTOP 20 s, SIGCONT): workers resume, nothing lost or duplicated', async () => {
    const { server, redis, runs, queue } = await setup();
    const n = Math.round(3000 * SCALE);
    const ids = await enqueueAll(queue, work(n, { min_ms: 5, max_ms: 20 }));
    runWorker(server.url, runs, ['--concurrency', '20']);
    await waitFor(() => tally(runs, ids).neverRan < n * 0.8, 60_000, 'some progress');
    server.signal('SIGSTOP');
    await new Promise((r) => setTimeout(r, 20_000));
    server.signal('SIGCONT');
    const resumedAt = Date.now();
    const state = await waitAllCompleted(redis, keys, ids, 120_000);
    const { neverRan, duplicated } = tally(runs, ids);
    record('freeze Redis 20 s (SIGSTOP/SIGCONT)', n, state, duplicated, Date.now() - resumedAt);
    expect(state.notCompleted).toEqual([]);
    expect(state.referenced.size).toBe(0);
    expect(neverRan).toBe(0);
    expect(duplicated).toBe(0);
  }, 180_000);

  it('4. SIGTERM a worker running 10 s jobs with a 2 s shutdown timeout: jobs go back and run later', async () => {
    const { server, redis, runs, queue } = await setup();
    const ids = await enqueueAll(queue, work(10, { min_ms: 10_000, max_ms: 10_000 }));
    const worker = runWorker(server.url, runs, ['--concurrency', '10', '--shutdown-timeout', '2s']);
    await waitFor(async () => (await redis.llen(keys.processing)) === 10, 30_000, 'all 10 in flight');
    const termAt = Date.now();
    worker.child.kill('SIGTERM');
    const { code } = await worker.done;
    const exitMs = Date.now() - termAt;
    expect(code).toBe(0);
    expect(exitMs).toBeLessThan(2000 + 3000);
    expect(await redis.llen(keys.processing)).toBe(0);
    expect((await redis.lrange(keys.queue('normal'), 0, -1)).sort()).toEqual([...ids].sort());
    // They run later, to completion (shortened so the test does not wait 10 s).
    for (const id of ids) {
      const doc = (await redis.get(keys.job(id)))!;
      await redis.set(keys.job(id), doc.replace('"min_ms":10000,"max_ms":10000', '"min_ms":1,"max_ms":2'));
    }
    runWorker(server.url, runs);
    const state = await waitAllCompleted(redis, keys, ids, 30_000);
    const { duplicated } = tally(runs, ids);
    record('SIGTERM, 10 s jobs, 2 s grace', ids.length, state, duplicated, exitMs);
    expect(state.notCompleted).toEqual([]);
    expect(duplicated).toBe(0);
  });

  it('5. SIGKILL `dlq requeue --all` mid-sweep, then two requeues at once: every job in one place, none moved twice, none left behind', async () => {
    const { server, redis } = await setup();
    const prefix = 'faults5:';
    const keys5 = new Keys(prefix);
    const n = Math.round(100_000 * SCALE);
    const ids = Array.from({ length: n }, (_, i) => `dead-${String(i).padStart(6, '0')}`);
    // Mixed priorities and routing keys: each job must come back to its own ready list.
    const deadDoc = (id: string) => {
      const i = Number(id.slice('dead-'.length));
      return deadJobDocument(id, {
        priority: (['high', 'normal', 'low'] as const)[i % 3],
        routing_key: i % 5 === 0 ? 'gpu' : 'default',
      });
    };
    await seedDeadJobs(redis, keys5, ids, deadDoc);
    const audit = () => auditDeadLetterRequeue(redis, keys5, ids, deadDoc, ['default', 'gpu']);
    const requeue = (timeoutMs: number) =>
      startCli(build.bin, ['dlq', 'requeue', '--all', '--yes', '--json', '--prefix', prefix], {
        env: cleanEnv({ REDIS_URL: server.url }),
        timeoutMs,
      });

    const first = requeue(120_000);
    await waitFor(async () => (await redis.llen(keys5.dead)) < n - 2000, 60_000, 'the first batches');
    first.child.kill('SIGKILL');
    expect((await first.done).signal).toBe('SIGKILL');
    const afterKill = await audit();
    expect(afterKill).toMatchObject({ lost: [], duplicated: [], mismatched: [] });
    expect(afterKill.ready).toBeGreaterThan(0);
    expect(afterKill.ready, 'the sweep should have been killed before the end').toBeLessThan(n);
    expect(afterKill.dead + afterKill.ready).toBe(n);

    const startedAt = Date.now();
    const [a, b] = await Promise.all([requeue(120_000).done, requeue(120_000).done]);
    expect([a.code, b.code]).toEqual([0, 0]);
    const moved = [a, b].map((r) => (JSON.parse(r.stdout) as { requeued: number }).requeued);
    const afterRace = await audit();
    expect(afterRace).toMatchObject({ lost: [], duplicated: [], mismatched: [] });
    // No job was moved by both: what they report moving is exactly what left the dead-letter list.
    expect(moved[0]! + moved[1]!).toBe(afterRace.ready - afterKill.ready);
    expect(afterRace.dead + afterRace.ready).toBe(n);
    // Each sweep reads by position; the other's moves shift its windows, so each looks again beyond
    // what it kept until it sees no such move: together they leave nothing behind.
    const elapsedMs = Date.now() - startedAt;
    report({
      scenario: 'SIGKILL dlq requeue, 2 at once',
      jobs: n,
      lost: afterRace.lost.length,
      duplicated: afterRace.duplicated.length,
      misplaced: afterRace.mismatched.length + afterRace.dead,
      recovery_ms: elapsedMs,
      notes: `${afterKill.ready} moved before the kill; the two at once moved ${moved.join(' + ')}`,
    });
    expect(afterRace).toMatchObject({ dead: 0, ready: n });
    expect(await redis.llen(keys5.dead)).toBe(0);
  });
});
