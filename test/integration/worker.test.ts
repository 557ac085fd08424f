/**
 * The worker engine in-process against a real redis-server: priorities, retries, dead-lettering,
 * timeouts, job-type filters, results, and every vector document the original producers write.
 */
import { Writable } from 'node:stream';
import { inspect } from 'node:util';
import type { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { decodeJob } from '../../src/core/codec.js';
import type { HandlerContext, HandlerMap, JobHandler } from '../../src/core/handlers.js';
import { createLogger } from '../../src/core/logger.js';
import { Queue } from '../../src/core/queue.js';
import { Worker, type WorkerOptions } from '../../src/core/worker.js';
import { freshPrefix, onCluster, rawClient, testRedisUrl, waitFor } from '../helpers/context.js';
import { SilencingProxy } from '../helpers/proxy.js';
import { loadVectors, seedVectors, VECTOR_FILES } from '../helpers/seed.js';

let redis: Redis;
let prefix: string;
let queue: Queue;
const workers: Worker[] = [];

beforeEach(() => {
  redis = rawClient();
  prefix = freshPrefix();
  queue = new Queue(redis, { prefix });
});

afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.stop()));
  redis.disconnect();
});

function startWorker(handlers: HandlerMap, options: Partial<WorkerOptions> = {}): Worker {
  const worker = new Worker({
    handlers,
    redisUrl: testRedisUrl(),
    prefix,
    logger: createLogger({ level: 'silent' }),
    retry: { baseMs: 50, maxMs: 200, jitter: 0 },
    ...options,
  });
  workers.push(worker);
  void worker.start();
  return worker;
}

/** A log destination that keeps the worker's JSON log lines, parsed, in `lines`. */
function captureLogs(): { lines: Array<Record<string, unknown>>; destination: Writable } {
  const lines: Array<Record<string, unknown>> = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n'))
        if (line.trim() !== '') lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { lines, destination };
}

/** Waits until the result hash of job `id` says completed. */
/**
 * Runs `body` with a worker (handler `j` records the ids it runs; warnings captured; 60 s lease) that
 * reaches Redis through a {@link SilencingProxy}, once the worker has registered; closes the proxy after.
 */
async function withProxiedWorker(
  options: Partial<WorkerOptions>,
  body: (bed: {
    proxy: SilencingProxy;
    worker: Worker;
    lines: Array<Record<string, unknown>>;
    runs: string[];
  }) => Promise<void>,
): Promise<void> {
  const upstream = new URL(testRedisUrl());
  const proxy = await SilencingProxy.start(upstream.hostname, Number(upstream.port));
  try {
    const { lines, destination } = captureLogs();
    const runs: string[] = [];
    const worker = startWorker(
      { j: (job) => void runs.push(job.id) },
      {
        redisUrl: `redis://127.0.0.1:${proxy.port}`,
        leaseMs: 60_000,
        logger: createLogger({ level: 'warn', destination }),
        ...options,
      },
    );
    await waitFor(async () => (await redis.zcard(queue.keys.workers)) === 1, 5000, 'worker registration');
    await body({ proxy, worker, lines, runs });
  } finally {
    await proxy.close();
  }
}

function completed(id: string, what: string, timeoutMs = 5000): Promise<boolean> {
  return waitFor(
    async () => (await redis.hget(queue.keys.result(id), 'status')) === 'completed',
    timeoutMs,
    what,
  );
}

/** Waits until job `id` is in the dead-letter queue. */
function deadLettered(id: string, what: string, timeoutMs = 5000): Promise<boolean> {
  return waitFor(async () => (await redis.lrange(queue.keys.dead, 0, -1)).includes(id), timeoutMs, what);
}

async function documentOf(id: string) {
  const raw = await redis.get(queue.keys.job(id));
  if (raw === null) throw new Error(`no document for ${id}`);
  const decoded = decodeJob(raw);
  if (!decoded.ok) throw new Error(`document of ${id} does not decode: ${decoded.reason}`);
  return decoded.job;
}

describe('worker', () => {
  it('completes a job: document completed with a 24 h TTL, result stored, nothing left in processing', async () => {
    const job = await queue.enqueue('add', { a: 2, b: 3 });
    const add: JobHandler<{ a: number; b: number }> = (j) => ({ sum: j.data.a + j.data.b });
    startWorker({ add: add as JobHandler });
    await completed(job.id, 'result');
    const done = await documentOf(job.id);
    expect(done.status).toBe('completed');
    expect(done.payload).toBe('{"a":2,"b":3}');
    const ttl = await redis.ttl(queue.keys.job(job.id));
    expect(ttl).toBeGreaterThan(86_000);
    expect(ttl).toBeLessThanOrEqual(86_400);
    expect(await redis.hget(queue.keys.result(job.id), 'result')).toBe('{"sum":5}');
    expect(await redis.llen(queue.keys.processing)).toBe(0);
    expect(await redis.zcard(queue.keys.leases)).toBe(0);
    expect(await redis.hget(queue.keys.stats, 'completed')).toBe('1');
  });

  it('runs a high job before a queue of low jobs enqueued earlier', async () => {
    const order: string[] = [];
    const record: JobHandler = async (job) => {
      order.push(job.name);
      await new Promise((r) => setTimeout(r, 5));
    };
    const lows = Array.from({ length: 30 }, () => ({ name: 'low', priority: 'low' as const }));
    await queue.enqueueBatch(lows);
    startWorker({ low: record, high: record }, { concurrency: 1 });
    await waitFor(() => order.length >= 3, 5000, 'first low jobs');
    await queue.enqueue('high', null, { priority: 'high' });
    await waitFor(() => order.includes('high'), 5000, 'the high job');
    const highAt = order.indexOf('high');
    // At most the job in flight and one already fetched may run between the enqueue and the high job.
    expect(order.slice(0, highAt).length).toBeLessThan(30);
    expect(await redis.llen(queue.keys.queue('low'))).toBeGreaterThan(0);
  });

  it('wakes an idle worker at once when a job is enqueued (no 1-3 s polling delay)', async () => {
    let startedAt = 0;
    startWorker({ ping: () => void (startedAt = Date.now()) }, { pollIntervalMs: 5000 });
    await waitFor(async () => (await redis.zcard(queue.keys.workers)) === 1, 5000, 'worker registration');
    await new Promise((r) => setTimeout(r, 200)); // the worker is now blocked waiting for work
    const enqueuedAt = Date.now();
    await queue.enqueue('ping', null, { priority: 'high' });
    await waitFor(() => startedAt > 0, 5000, 'the job to start');
    // Poll interval is 5 s: only the wake-up signal can explain a start well below it.
    expect(startedAt - enqueuedAt).toBeLessThan(1000);
  });

  it('retries a failing job with backoff, then dead-letters it with status failed and a 7 day TTL', async () => {
    let runs = 0;
    const job = await queue.enqueue('boom', null, { maxRetries: 3 });
    startWorker({
      boom: () => {
        runs++;
        throw new Error(`boom ${runs}`);
      },
    });
    await deadLettered(job.id, 'dead letter', 10_000);
    expect(runs).toBe(3);
    const dead = await documentOf(job.id);
    expect(dead.status).toBe('failed');
    expect(dead.attempts).toBe(3);
    expect(dead.error).toBe('boom 3');
    expect(dead.scheduledFor).toBeUndefined();
    expect(await redis.ttl(queue.keys.job(job.id))).toBeGreaterThan(604_000);
    expect(await redis.zscore(queue.keys.scheduled, job.id)).toBeNull();
    const result = await redis.hgetall(queue.keys.result(job.id));
    expect(result.status).toBe('failed');
    expect(result.error).toBe('boom 3');
    expect(await redis.hget(queue.keys.stats, 'retried')).toBe('2');
    expect(await redis.hget(queue.keys.stats, 'failed')).toBe('1');
  });

  it('hands each attempt its context: attempt, worker id, logger and signal, which a copy keeps', async () => {
    const job = await queue.enqueue('twice', null, { maxRetries: 3 });
    const seen: Array<{ attempt: number; workerId: string; aborted: boolean; logs: boolean }> = [];
    const worker = startWorker({
      twice: (_job, ctx) => {
        const copy = { ...ctx };
        seen.push({
          attempt: copy.attempt,
          workerId: copy.workerId,
          aborted: copy.signal.aborted,
          logs: typeof copy.logger.info === 'function',
        });
        if (copy.attempt === 1) throw new Error('the first attempt fails');
        return 'ok';
      },
    });
    await completed(job.id, 'the second attempt');
    const expected = { workerId: worker.id, aborted: false, logs: true };
    expect(seen).toEqual([
      { attempt: 1, ...expected },
      { attempt: 2, ...expected },
    ]);
  });

  it('gives every context the same two getters and prints only its documented keys', async () => {
    const jobs = [await queue.enqueue('look', 1), await queue.enqueue('look', 2)];
    const contexts: HandlerContext[] = [];
    startWorker({
      look: (_job, ctx) => {
        contexts.push(ctx);
      },
    });
    for (const job of jobs) await completed(job.id, 'each job');
    expect(contexts).toHaveLength(2);
    const [first, second] = contexts as [HandlerContext, HandlerContext];
    expect(Object.keys(first)).toEqual(['signal', 'logger', 'attempt', 'workerId']);
    // It prints as its four keys, not the run it keeps.
    expect(inspect(first)).not.toContain('Symbol(');
    expect(inspect(first)).toContain('attempt: 1');
    expect(JSON.stringify(first)).not.toContain('payload');
    for (const key of ['signal', 'logger'] as const) {
      const a = Object.getOwnPropertyDescriptor(first, key);
      const b = Object.getOwnPropertyDescriptor(second, key);
      expect(a?.get).toBeTypeOf('function');
      expect(a?.enumerable).toBe(true);
      // Shared, not a closure per job (which V8 keeps in its old generation, with the job's objects).
      expect(a?.get).toBe(b?.get);
    }
    // Each context still answers for its own job.
    expect(first.signal).not.toBe(second.signal);
    expect(first.signal.aborted).toBe(false);
    expect(first.logger.bindings()).toMatchObject({ job_id: jobs[0]!.id });
    expect(second.logger.bindings()).toMatchObject({ job_id: jobs[1]!.id });
  });

  it('max_retries 0 means a single attempt', async () => {
    let runs = 0;
    const job = await queue.enqueue('once', null, { maxRetries: 0 });
    startWorker({
      once: () => {
        runs++;
        throw new Error('nope');
      },
    });
    await deadLettered(job.id, 'dead letter');
    expect(runs).toBe(1);
  });

  it('keeps going after a handler throws, and fails a job with an unknown name like any failure', async () => {
    const bad = await queue.enqueue('nobody-handles-this', null, { maxRetries: 1 });
    const good = await queue.enqueue('fine');
    startWorker({ fine: () => 'ok' });
    await deadLettered(bad.id, 'dead letter');
    await completed(good.id, 'good job');
    expect((await documentOf(bad.id)).error).toMatch(
      /no handler registered for job name "nobody-handles-this"/,
    );
  });

  it('fails a job whose handler throws something that cannot be printed, and keeps going', async () => {
    const odd = await queue.enqueue('odd', null, { maxRetries: 1 });
    const sync = await queue.enqueue('syncThrow', null, { maxRetries: 1 });
    const good = await queue.enqueue('fine');
    startWorker({
      odd: async () => {
        throw Object.create(null) as unknown;
      },
      syncThrow: () => {
        throw Object.create(null) as unknown;
      },
      fine: () => 'ok',
    });
    await deadLettered(odd.id, 'odd dead letter');
    await deadLettered(sync.id, 'sync dead letter');
    await completed(good.id, 'good job');
    expect((await documentOf(odd.id)).error).toBe('[object Object] (thrown value cannot be printed)');
    expect((await documentOf(sync.id)).status).toBe('failed');
  });

  it('fails a job whose handler returns a value whose then cannot be read, and keeps going', async () => {
    const odd = await queue.enqueue('odd', null, { maxRetries: 1 });
    const good = await queue.enqueue('fine');
    startWorker({
      odd: () => ({
        get then(): never {
          throw new Error('no then for you');
        },
      }),
      fine: () => 'ok',
    });
    await deadLettered(odd.id, 'odd dead letter');
    await completed(good.id, 'good job');
    expect((await documentOf(odd.id)).error).toBe('no then for you');
  });

  it('at concurrency 1, keeps taking jobs after batches holding only unreadable or missing documents', async () => {
    // Every other dequeue brings an unreadable document or an id without one: no job starts from it, and
    // its slot must still go to the next job (a reply arriving while the previous batch's requests go
    // out waits a few turns of the event loop before its jobs are dispatched).
    const good: string[] = [];
    for (let i = 0; i < 40; i++) {
      good.push((await queue.enqueue('x', null)).id);
      if (i % 2 === 0) await redis.set(queue.keys.job(`bad${i}`), '{"id":');
      await redis.lpush(queue.keys.queue('normal'), `bad${i}`);
    }
    const runs: string[] = [];
    startWorker({ x: (job) => void runs.push(job.id) }, { concurrency: 1, pollIntervalMs: 60_000 });
    await completed(good.at(-1)!, 'the last job', 10_000);
    expect(runs).toEqual(good);
    expect(await redis.llen(queue.keys.dead)).toBe(40);
  });

  it('dead-letters a corrupt document at once without retry and keeps its bytes', async () => {
    const corrupt = '{"id":"c1","name":"x","payload":{oops}';
    await redis.set(queue.keys.job('c1'), corrupt);
    await redis.lpush(queue.keys.queue('normal'), 'c1');
    const runs: string[] = [];
    startWorker({ x: (job) => void runs.push(job.id) });
    await deadLettered('c1', 'dead letter');
    expect(await redis.get(queue.keys.job('c1'))).toBe(corrupt);
    expect(runs).toEqual([]);
    expect(await redis.llen(queue.keys.processing)).toBe(0);
    expect(await redis.zscore(queue.keys.scheduled, 'c1')).toBeNull();
  });

  it('fails a job on time when its handler ignores the abort signal, and frees the slot', async () => {
    const stuck = await queue.enqueue('stuck', null, { maxRetries: 1 });
    const after = await queue.enqueue('quick');
    const worker = startWorker(
      {
        stuck: () => new Promise(() => undefined), // never settles, ignores the signal
        quick: () => 'done',
      },
      { concurrency: 1, jobTimeoutMs: 300 },
    );
    const started = Date.now();
    await deadLettered(stuck.id, 'timeout');
    expect(Date.now() - started).toBeLessThan(3000);
    expect((await documentOf(stuck.id)).error).toMatch(/deadline exceeded/);
    // The single slot was given back: the next job ran.
    await completed(after.id, 'next job');
    expect(worker.stats().abandoned).toBe(1);
    expect(worker.stats().inFlight).toBe(0);
  });

  it('times out only the jobs of a batch still running, each after the full timeout', async () => {
    // Four jobs taken in one dequeue: two end before the timeout, two do not. Each handler's own
    // start and end are recorded to check that nothing was cut short.
    const ends = new Map<string, number>();
    const starts = new Map<string, number>();
    const handler = (ms: number) => (job: { id: string }, ctx: { signal: AbortSignal }) => {
      starts.set(job.id, Date.now());
      return new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => resolve('done'), ms);
        ctx.signal.addEventListener('abort', () => {
          clearTimeout(timer);
          ends.set(job.id, Date.now());
          reject(ctx.signal.reason as Error);
        });
      });
    };
    const quick = await queue.enqueue('quick', null, { maxRetries: 1 });
    const slow = await queue.enqueue('slow', null, { maxRetries: 1 });
    const quick2 = await queue.enqueue('quick', null, { maxRetries: 1 });
    const slow2 = await queue.enqueue('slow', null, { maxRetries: 1 });
    startWorker({ quick: handler(50), slow: handler(60_000) }, { concurrency: 8, jobTimeoutMs: 400 });
    await Promise.all([
      completed(quick.id, 'quick'),
      completed(quick2.id, 'quick2'),
      deadLettered(slow.id, 'slow timeout'),
      deadLettered(slow2.id, 'slow2 timeout'),
    ]);
    for (const job of [slow, slow2]) {
      expect((await documentOf(job.id)).error).toMatch(/deadline exceeded \(job timeout 400 ms\)/);
      // Not cut short (a millisecond or two of clock granularity aside).
      expect(ends.get(job.id)! - starts.get(job.id)!).toBeGreaterThanOrEqual(395);
    }
    expect(ends.has(quick.id) || ends.has(quick2.id)).toBe(false);
  });

  it('aborts the handler signal on timeout', async () => {
    let reason: unknown;
    const job = await queue.enqueue('polite', null, { maxRetries: 1 });
    startWorker(
      {
        polite: (_job, ctx) =>
          new Promise((_, reject) =>
            ctx.signal.addEventListener('abort', () => {
              reason = ctx.signal.reason;
              reject(ctx.signal.reason as Error);
            }),
          ),
      },
      { jobTimeoutMs: 100 },
    );
    await deadLettered(job.id, 'dead letter');
    expect(String(reason)).toMatch(/deadline exceeded/);
  });

  it('takes only its job types and leaves the others queued for other workers', async () => {
    const mine = await queue.enqueue('mine');
    const theirs = await queue.enqueue('theirs');
    startWorker({ mine: () => 'ok', theirs: () => 'should not run here' }, { jobTypes: ['mine'] });
    await completed(mine.id, 'mine');
    await new Promise((r) => setTimeout(r, 200));
    expect(await redis.lrange(queue.keys.queue('normal'), 0, -1)).toEqual([theirs.id]);
    expect(await redis.llen(queue.keys.processing)).toBe(0);
  });

  it('serves its routing keys only', async () => {
    const gpu = await queue.enqueue('render', null, { routingKey: 'gpu' });
    const plain = await queue.enqueue('render');
    startWorker({ render: () => 'ok' }, { routingKeys: ['gpu'] });
    await completed(gpu.id, 'gpu job');
    await new Promise((r) => setTimeout(r, 200));
    expect(await redis.exists(queue.keys.result(plain.id))).toBe(0);
    expect(await redis.lrange(queue.keys.queue('normal'), 0, -1)).toEqual([plain.id]);
  });

  it('runs a delayed job once it is due, not before', async () => {
    let ranAt = 0;
    const before = Date.now();
    const job = await queue.enqueue('later', null, { delayMs: 600 });
    const dueAt = Date.parse(job.scheduledFor as string);
    expect(dueAt).toBeGreaterThanOrEqual(before + 600);
    startWorker({ later: () => void (ranAt = Date.now()) });
    await completed(job.id, 'delayed job');
    // Not before it is due (the score has millisecond precision), however slow the enqueue was.
    expect(ranAt).toBeGreaterThanOrEqual(dueAt);
  });

  it('keeps serving normal and low when the high queue holds a string, and names the key once a minute', async () => {
    const { lines, destination } = captureLogs();
    await redis.set(queue.keys.queue('high'), 'x');
    const first = await queue.enqueueBatch([
      { name: 'ok', priority: 'normal' },
      { name: 'ok', priority: 'low' },
      { name: 'ok', priority: 'normal' },
    ]);
    startWorker(
      { ok: () => 'done' },
      { logger: createLogger({ level: 'warn', format: 'json', destination }) },
    );
    for (const job of first.enqueued) await completed(job.id, `job ${job.id}`);
    // Later jobs too: the worker meets the key on every dequeue, and logs it only the first time.
    const later = await queue.enqueue('ok', null, { priority: 'low' });
    await completed(later.id, 'the later job');
    await new Promise((r) => setTimeout(r, 300)); // idle dequeues meet the key again
    const warnings = lines.filter((l) => l.msg === 'Ready list holds the wrong kind of value: skipped');
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({ key: queue.keys.queue('high'), type: 'string' });
    expect(lines.filter((l) => l.msg === 'Fetching jobs failed')).toEqual([]);
    expect(await redis.get(queue.keys.queue('high'))).toBe('x');
    expect(await redis.llen(queue.keys.processing)).toBe(0);
  });

  it('retries settlements that fail, writing each job once after the key is repaired', async () => {
    const { lines, destination } = captureLogs();
    // The lifetime stats hash holds a string: every settlement fails, before writing anything.
    await redis.set(queue.keys.stats, 'x');
    const { enqueued } = await queue.enqueueBatch(
      Array.from({ length: 40 }, (_, i) => ({ name: 'ok', payload: { i } })),
    );
    let runs = 0;
    startWorker(
      { ok: () => void runs++ },
      { concurrency: 10, logger: createLogger({ level: 'warn', format: 'json', destination }) },
    );
    await waitFor(
      () => lines.some((l) => l.msg === 'Settling jobs failed; will retry'),
      5000,
      'a failed settlement',
    );
    expect(await redis.hget(queue.keys.result(enqueued[0]!.id), 'status')).toBeNull();
    await redis.del(queue.keys.stats);
    for (const job of enqueued) await completed(job.id, `job ${job.id}`);
    expect(runs).toBe(40);
    expect(await redis.hget(queue.keys.stats, 'completed')).toBe('40');
    expect(await redis.llen(queue.keys.processing)).toBe(0);
    expect(await redis.zcard(queue.keys.leases)).toBe(0);
    expect(
      lines.filter((l) => typeof l.msg === 'string' && l.msg.startsWith('Lease no longer held')),
    ).toEqual([]);
  });

  it('returns unfinished jobs to the head of their queue on stop, attempts unchanged', async () => {
    const job = await queue.enqueue('long', { ms: 10_000 });
    let started = false;
    const worker = startWorker(
      {
        long: (_job, ctx) =>
          new Promise((resolve) => {
            started = true;
            ctx.signal.addEventListener('abort', () => resolve('aborted'));
          }),
      },
      { shutdownTimeoutMs: 200 },
    );
    await waitFor(() => started, 5000, 'job start');
    await worker.stop();
    expect(await redis.lrange(queue.keys.queue('normal'), 0, -1)).toEqual([job.id]);
    expect(await redis.llen(queue.keys.processing)).toBe(0);
    expect(await redis.zcard(queue.keys.leases)).toBe(0);
    const doc = await documentOf(job.id);
    expect(doc.attempts).toBe(0);
    expect(doc.status).toBe('pending');
    expect(await redis.zcard(queue.keys.workers)).toBe(0);
  });

  /**
   * What a dequeue whose reply was lost leaves: job `id` in processing under the lease of `workerId`, which
   * does not know it (written as the dequeue writes it, without going through a ready list the worker
   * serves).
   */
  async function takeWithReplyLost(id: string, workerId: string): Promise<void> {
    await redis.set(queue.keys.job(id), JSON.stringify({ id, name: 'j', payload: null }));
    await redis
      .multi()
      .lpush(queue.keys.processing, id)
      .zadd(queue.keys.leases, Date.now() + 60_000, id)
      .hset(queue.keys.leaseOwners, id, workerId)
      .exec();
  }

  it('runs a job whose id is twice in its ready list once, removing the second entry and saying so', async () => {
    const job = await queue.enqueue('j', null);
    await redis.lpush(queue.keys.queue('normal'), job.id); // a duplicate entry, next to the first
    const { lines, destination } = captureLogs();
    let runs = 0;
    const worker = startWorker(
      {
        j: async () => {
          runs++;
          await new Promise((r) => setTimeout(r, 100));
        },
      },
      { concurrency: 5, logger: createLogger({ level: 'warn', destination }) },
    );
    await completed(job.id, 'the job');
    await worker.stop();

    expect(runs).toBe(1);
    expect(worker.stats().completed).toBe(1);
    expect(lines.map((l) => [l.msg, l.job_id])).toEqual([
      ['Duplicate entry of a job in its ready list removed; the job is taken once', job.id],
    ]);
    expect(await redis.exists(queue.keys.queue('normal'), queue.keys.processing, queue.keys.leases)).toBe(0);
  });

  it('stopped while it waits for work, hands back at once a job the dequeue behind its wait took with the reply lost', async () => {
    const runs: string[] = [];
    const worker = startWorker(
      { j: (job) => void runs.push(job.id) },
      { pollIntervalMs: 5000, leaseMs: 60_000 },
    );
    await waitFor(async () => (await redis.zcard(queue.keys.workers)) === 1, 5000, 'worker registration');
    await new Promise((r) => setTimeout(r, 200)); // the worker is now blocked waiting for work
    await takeWithReplyLost('lost-at-stop', worker.id);

    await worker.stop();
    // Back at the head of its queue, not left under a lease for another worker to recover a minute later.
    expect(await redis.lrange(queue.keys.queue('normal'), 0, -1)).toEqual(['lost-at-stop']);
    expect(await redis.llen(queue.keys.processing)).toBe(0);
    expect(await redis.zcard(queue.keys.leases)).toBe(0);
    expect(runs).toEqual([]);
  });

  it.skipIf(onCluster())(
    'reconnects a waiting connection that went silent (each time), then runs the job enqueued meanwhile and one leased to it unknowingly',
    () =>
      withProxiedWorker(
        { pollIntervalMs: 500, replyTimeoutMs: 2000 },
        async ({ proxy, worker, lines, runs }) => {
          await new Promise((r) => setTimeout(r, 200)); // the worker is now blocked waiting for work
          expect(proxy.silence('bananas-worker-wait')).toBe(1);
          await takeWithReplyLost('lost-in-silence', worker.id);
          const job = await queue.enqueue('j', null);

          // The watchdog fires 2 s (replyTimeoutMs) after the wait should have ended; the job under a 60 s
          // lease runs long before it expires.
          await completed(job.id, 'the enqueued job to run after the reconnect', 20_000);
          await completed('lost-in-silence', 'the unknowingly leased job to run after the reconnect', 5_000);
          expect(runs.sort()).toEqual([job.id, 'lost-in-silence'].sort());
          const messages = lines.map((l) => String(l.msg));
          expect(messages).toContain('No reply while waiting for work - reconnecting the waiting connection');
          expect(messages).toContain(
            'Jobs taken in a dequeue whose reply was lost were returned to their queue',
          );

          // Silent again, and so is the handshake of the connection that replaces it: the watchdog keeps
          // watching, also a connection that connected but never became ready.
          await new Promise((r) => setTimeout(r, 300));
          proxy.silenceNew('bananas-worker-wait');
          expect(proxy.silence('bananas-worker-wait')).toBe(1);
          const second = await queue.enqueue('j', null);
          const reconnects = () =>
            lines.filter(
              (l) => l.msg === 'No reply while waiting for work - reconnecting the waiting connection',
            );
          await waitFor(() => reconnects().length === 3, 40_000, 'two more reconnects');
          proxy.silenceNew(undefined);
          await completed(second.id, 'a job enqueued during the second silence', 30_000);
          await worker.stop();
          expect(await redis.llen(queue.keys.processing)).toBe(0);
          expect(await redis.zcard(queue.keys.leases)).toBe(0);
        },
      ),
    100_000,
  );

  it.skipIf(onCluster())(
    'reconnects its main connection when it goes silent with calls outstanding, and settles the job it ran once',
    () =>
      withProxiedWorker({ replyTimeoutMs: 1000 }, async ({ proxy, worker, lines, runs }) => {
        // The main connection (settlements, heartbeats, dequeues of a busy worker) now drops every byte
        // without a reset; the waiting connection still works, so the job is taken and run, and its
        // settlement goes out on the silent connection.
        expect(proxy.silence('bananas-worker\r\n')).toBe(1);
        const job = await queue.enqueue('j', null);

        await completed(job.id, 'the job to be settled after the reconnect', 15_000);
        expect(runs).toEqual([job.id]);
        const warnings = lines.map((l) => String(l.msg));
        expect(warnings).toContain('No reply from Redis - reconnecting');
        expect(lines.find((l) => l.msg === 'No reply from Redis - reconnecting')).toMatchObject({
          connection: 'bananas-worker',
          reply_timeout_ms: 1000,
        });
        await worker.stop();
        expect(await redis.llen(queue.keys.processing)).toBe(0);
        expect(await redis.zcard(queue.keys.leases)).toBe(0);
        expect(worker.stats().completed).toBe(1);
      }),
    30_000,
  );

  it('stopped in the middle of a fast drain, leaves every job completed once or back in its queue', async () => {
    const total = 3000;
    for (let i = 0; i < total; i += 1000)
      await queue.enqueueBatch(Array.from({ length: 1000 }, () => ({ name: 'noop', payload: {} })));
    let runs = 0;
    const worker = startWorker({ noop: () => void runs++ }, { concurrency: 50 });
    await waitFor(() => runs >= 500, 10_000, '500 jobs run');
    await worker.stop();
    const stats = worker.stats();
    expect(await redis.llen(queue.keys.processing)).toBe(0);
    expect(await redis.zcard(queue.keys.leases)).toBe(0);
    const queued = await redis.llen(queue.keys.queue('normal'));
    expect(stats.completed).toBe(runs);
    expect(stats.completed + queued).toBe(total);
    expect(queued).toBeGreaterThan(0);
  });

  it('registers itself with a heartbeat that operators can read', async () => {
    const worker = startWorker({ x: () => 'ok' }, { concurrency: 7, routingKeys: ['default', 'gpu'] });
    await waitFor(
      async () => (await redis.zscore(queue.keys.workers, worker.id)) !== null,
      5000,
      'registration',
    );
    const info = await redis.hgetall(queue.keys.worker(worker.id));
    expect(info.concurrency).toBe('7');
    expect(info.routing_keys).toBe('default,gpu');
    expect(Number(info.pid)).toBe(process.pid);
    expect(await redis.pttl(queue.keys.worker(worker.id))).toBeGreaterThan(0);
  });

  it('processes every job document the original producers write, once each, leaving the stubs untouched', async () => {
    const seen = new Map<string, number>();
    const handler: JobHandler = (job) => {
      seen.set(job.id, (seen.get(job.id) ?? 0) + 1);
      return { handled: job.name };
    };
    const handlers: HandlerMap = {};
    for (const file of VECTOR_FILES) {
      const vectors = loadVectors(file);
      for (const entry of Object.values(vectors.keys)) {
        if (entry.type !== 'string') continue;
        const decoded = decodeJob(entry.value);
        if (decoded.ok) handlers[decoded.job.name] = handler;
      }
    }
    // Each producer's keys go under their own prefix: their ids and lists would collide otherwise.
    const prefixes = VECTOR_FILES.map(() => freshPrefix());
    for (const [i, file] of VECTOR_FILES.entries())
      await seedVectors(redis, loadVectors(file), prefixes[i] as string);
    const expected: string[] = [];
    for (const p of prefixes) {
      const q = new Queue(redis, { prefix: p });
      for (const list of q.listsServed(['high', 'normal', 'low'], ['default', 'gpu'])) {
        expected.push(...(await redis.lrange(list, 0, -1)));
      }
      // Bring scheduled jobs (2030) due now.
      const members = await redis.zrange(q.keys.scheduled, 0, -1);
      for (const m of members) await redis.zadd(q.keys.scheduled, 1, m);
      expected.push(...members);
      const w = new Worker({
        handlers,
        redisUrl: testRedisUrl(),
        prefix: p,
        routingKeys: ['default', 'gpu'],
        logger: createLogger({ level: 'silent' }),
      });
      workers.push(w);
      void w.start();
    }
    await waitFor(() => expected.every((id) => seen.has(id)), 10_000, 'all vector jobs').catch(
      (err: Error) => {
        throw new Error(
          `${err.message}; never ran: ${JSON.stringify(expected.filter((id) => !seen.has(id)))}`,
        );
      },
    );
    expect([...seen.values()].every((n) => n === 1)).toBe(true);
    expect(expected).toContain(''); // the cron job with an empty id
    const go = loadVectors('go-original');
    for (const [key, entry] of Object.entries(go.keys)) {
      if (entry.type === 'string' && entry.value.includes('"error":"') && !entry.value.includes('"name"')) {
        expect(await redis.get(prefixes[0] + key.slice('bananas:'.length))).toBe(entry.value);
      }
    }
    for (const p of prefixes) {
      const q = new Queue(redis, { prefix: p });
      expect(await redis.llen(q.keys.scheduled)).toBe(0);
      for (const list of q.listsServed(['high', 'normal', 'low'], ['default', 'gpu'])) {
        expect(await redis.llen(list)).toBe(0);
      }
    }
  });
});
