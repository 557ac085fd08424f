/**
 * The guided demo: a worker with the built-in handlers processes a mix of jobs (every priority, a
 * delayed job, a flaky job that succeeds on retry, failing jobs and a corrupt document that end in the
 * dead-letter queue) on a throwaway redis-server, or on the Redis given, under a demo prefix.
 */
import { randomBytes } from 'node:crypto';
import type { RedisClient } from '../core/connection.js';
import { decodeJob } from '../core/codec.js';
import { connectOrThrow, createRedis } from '../core/connection.js';
import { BananasError } from '../core/errors.js';
import { demoHandlers, type HandlerMap } from '../core/handlers.js';
import { scanKeys } from '../core/iterate.js';
import { escapeGlob } from '../core/keys.js';
import { hasRedisServer, LocalRedisServer } from '../core/local-redis.js';
import { createLogger } from '../core/logger.js';
import { Queue, type EnqueueRequest } from '../core/queue.js';
import { redactUrl } from '../core/redact.js';
import { Worker } from '../core/worker.js';

export interface DemoJobReport {
  id: string;
  name: string;
  priority: string;
  /** completed | dead-letter | pending */
  outcome: string;
  attempts: number;
  /** Order in which the worker started the job's first attempt (1 = first). */
  started_order?: number;
  result?: string;
  error?: string;
}

export interface DemoReport {
  redis: string;
  throwaway_redis: boolean;
  prefix: string;
  duration_ms: number;
  jobs: DemoJobReport[];
  totals: { enqueued: number; completed: number; dead_letter: number; retried: number };
}

export const DEMO_NO_REDIS_MESSAGE =
  'bananas demo needs Redis: install redis-server (Debian/Ubuntu: apt-get install redis-server; macOS: brew install redis) so the demo can start a throwaway one, or pass --redis-url / REDIS_URL';

const MIX: EnqueueRequest[] = [
  { name: 'sleep', payload: { ms: 300 }, priority: 'low', description: 'low priority, enqueued first' },
  { name: 'echo', payload: { greeting: 'hello from low' }, priority: 'low' },
  { name: 'echo', payload: { greeting: 'hello from normal' }, priority: 'normal' },
  { name: 'sleep', payload: { ms: 200 }, priority: 'normal' },
  // Raw JSON payload: the big integer survives byte for byte.
  {
    name: 'echo',
    payloadJson: '{"greeting":"hello from high","order_id":12345678901234567890}',
    priority: 'high',
  },
  { name: 'echo', payload: { greeting: 'urgent' }, priority: 'high' },
  { name: 'echo', payload: { greeting: 'delayed by 1s' }, priority: 'normal', delayMs: 1000 },
  { name: 'flaky', payload: { succeed_on: 2 }, priority: 'normal', description: 'fails once, then succeeds' },
  { name: 'fail', payload: { message: 'card declined' }, priority: 'high', maxRetries: 2 },
  { name: 'no_such_handler', payload: {}, priority: 'normal', maxRetries: 1 },
];

export interface DemoOptions {
  /** Use this Redis instead of starting a throwaway redis-server (the demo then works under its own random prefix and removes it). */
  redisUrl?: string;
  /** Prefix on the throwaway server; on a given Redis, the base of the random demo prefix. */
  prefix: string;
  onProgress?: (text: string) => void;
  timeoutMs?: number;
}

export async function runDemo(options: DemoOptions): Promise<DemoReport> {
  const started = Date.now();
  let server: LocalRedisServer | undefined;
  let url = options.redisUrl;
  const prefix = url
    ? `${options.prefix.replace(/:$/, '')}-demo-${randomBytes(4).toString('hex')}:`
    : options.prefix;
  if (!url) {
    if (!hasRedisServer()) throw new BananasError('REDIS_UNAVAILABLE', DEMO_NO_REDIS_MESSAGE);
    options.onProgress?.('Starting a throwaway redis-server…');
    server = await LocalRedisServer.start();
    url = server.url;
  }
  const redis = createRedis({ url, mode: 'fail-fast', connectionName: 'bananas-demo' });
  let worker: Worker | undefined;
  try {
    await connectOrThrow(redis, url);
    const queue = new Queue(redis, { prefix });
    options.onProgress?.('Enqueueing the demo jobs…');
    const { enqueued } = await queue.enqueueBatch(MIX);
    // A corrupt document, as a crashed writer or a hand edit leaves it: it goes to the dead-letter queue untouched.
    const corruptId = 'demo-corrupt-document';
    await redis.set(
      queue.keys.job(corruptId),
      '{"id":"demo-corrupt-document","name":"echo","payload":{oops}',
    );
    await redis.lpush(queue.keys.queue('normal'), corruptId);
    const ids = [...enqueued.map((j) => j.id), corruptId];

    options.onProgress?.('Running a worker with the built-in handlers (echo, sleep, fail, flaky)…');
    const startOrder = new Map<string, number>();
    const handlers: HandlerMap = {};
    for (const [name, handler] of Object.entries(demoHandlers)) {
      handlers[name] = (job, ctx) => {
        if (!startOrder.has(job.id)) startOrder.set(job.id, startOrder.size + 1);
        return handler(job, ctx);
      };
    }
    worker = new Worker({
      handlers,
      redisUrl: url,
      prefix,
      concurrency: 2,
      retry: { baseMs: 300, maxMs: 1000 },
      logger: createLogger({ level: 'silent' }),
    });
    await worker.start();
    const deadline = Date.now() + (options.timeoutMs ?? 30_000);
    for (;;) {
      const settled = await countSettled(redis, queue, ids);
      if (settled === ids.length) break;
      if (Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    await worker.stop();
    worker = undefined;
    const jobs = await reportJobs(redis, queue, ids, startOrder);
    const report: DemoReport = {
      redis: redactUrl(url),
      throwaway_redis: server !== undefined,
      prefix,
      duration_ms: Date.now() - started,
      jobs,
      totals: {
        enqueued: ids.length,
        completed: jobs.filter((j) => j.outcome === 'completed').length,
        dead_letter: jobs.filter((j) => j.outcome === 'dead-letter').length,
        retried: jobs.filter((j) => j.attempts > 0 && j.outcome === 'completed').length,
      },
    };
    if (!server) await removeKeys(redis, prefix);
    return report;
  } finally {
    await worker?.stop();
    redis.disconnect();
    await server?.destroy();
  }
}

async function countSettled(redis: RedisClient, queue: Queue, ids: string[]): Promise<number> {
  const dead = new Set(await redis.lrange(queue.keys.dead, 0, -1));
  const results = await Promise.all(ids.map((id) => redis.hget(queue.keys.result(id), 'status')));
  return ids.filter((id, i) => dead.has(id) || results[i] === 'completed').length;
}

async function reportJobs(
  redis: RedisClient,
  queue: Queue,
  ids: string[],
  startOrder: Map<string, number>,
): Promise<DemoJobReport[]> {
  const dead = new Set(await redis.lrange(queue.keys.dead, 0, -1));
  const reports: DemoJobReport[] = [];
  for (const id of ids) {
    const [raw, result] = await Promise.all([
      redis.get(queue.keys.job(id)),
      redis.hgetall(queue.keys.result(id)),
    ]);
    const decoded = raw === null ? undefined : decodeJob(raw);
    const job = decoded?.ok ? decoded.job : undefined;
    reports.push({
      id,
      name: job?.name ?? '(unreadable document)',
      priority: job?.priority ?? '-',
      outcome: dead.has(id) ? 'dead-letter' : result.status === 'completed' ? 'completed' : 'pending',
      attempts: job?.attempts ?? 0,
      ...(startOrder.has(id) ? { started_order: startOrder.get(id) } : {}),
      ...(result.result !== undefined ? { result: result.result } : {}),
      ...(job?.error ? { error: job.error } : decoded && !decoded.ok ? { error: decoded.reason } : {}),
    });
  }
  return reports.sort((a, b) => (a.started_order ?? Infinity) - (b.started_order ?? Infinity));
}

/** Removes the demo's own keys (SCAN over its random prefix only). */
async function removeKeys(redis: RedisClient, prefix: string): Promise<void> {
  for await (const keys of scanKeys(redis, `${escapeGlob(prefix)}*`, { count: 500 })) {
    await redis.unlink(...keys);
  }
}
