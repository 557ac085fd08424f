/**
 * A real Redis Cluster (3 masters, 3 replicas, password required) started by the test: connection forms,
 * the hash-tag rule for the prefix, SCAN on every master, the engine (enqueue, dequeue, complete, retry,
 * dead-letter, promote, recover) and the operator commands.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { decodeJob } from '../../src/core/codec.js';
import { connectOrThrow, createRedis, masterNodes, type RedisClient } from '../../src/core/connection.js';
import { UsageError } from '../../src/core/errors.js';
import type { HandlerMap } from '../../src/core/handlers.js';
import { scanKeys } from '../../src/core/iterate.js';
import { escapeGlob } from '../../src/core/keys.js';
import { createLogger } from '../../src/core/logger.js';
import { Queue } from '../../src/core/queue.js';
import { Worker, type WorkerOptions } from '../../src/core/worker.js';
import { cleanEnv, oneErrorLine, runCli, snapshotBuild, type SnapshotBuild } from '../helpers/cli.js';
import { waitFor } from '../helpers/context.js';
import { freeClusterPort, LocalCluster } from './servers.js';

const PASSWORD = 'cl-s3cret!';
let cluster: LocalCluster;
let build: SnapshotBuild;
let redis: RedisClient;
let url: string;
const workers: Worker[] = [];

beforeAll(async () => {
  [cluster, build] = await Promise.all([LocalCluster.start({ password: PASSWORD }), snapshotBuild()]);
  url = cluster.url();
  redis = createRedis({ url, mode: 'fail-fast' });
  await connectOrThrow(redis, url);
});

afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.stop()));
});

afterAll(async () => {
  redis?.disconnect();
  await cluster?.destroy();
  build?.remove();
});

function taggedPrefix(): string {
  return `{bt-${randomBytes(4).toString('hex')}}:`;
}

function cli(args: string[], env: Record<string, string | undefined> = {}) {
  return runCli(build.bin, args, { env: cleanEnv({ REDIS_URL: url, ...env }), timeoutMs: 30_000 });
}

async function totalKeys(): Promise<number> {
  let total = 0;
  for (const node of masterNodes(redis)) total += await node.dbsize();
  return total;
}

function startWorker(prefix: string, handlers: HandlerMap, options: Partial<WorkerOptions> = {}): Worker {
  const worker = new Worker({
    handlers,
    redisUrl: url,
    prefix,
    logger: createLogger({ level: 'silent' }),
    retry: { baseMs: 50, maxMs: 200, jitter: 0 },
    ...options,
  });
  workers.push(worker);
  void worker.start();
  return worker;
}

describe('Redis Cluster: connection', () => {
  it('the client is a cluster client that knows three masters', () => {
    expect(masterNodes(redis)).toHaveLength(3);
  });

  it('a wrong password exits 4 and the message never shows a password', async () => {
    const wrong = cluster.url({ password: 'not-the-password' });
    const result = await cli(['queue', 'stats', '--prefix', '{bananas}:'], { REDIS_URL: wrong });
    expect(result.code).toBe(4);
    const message = oneErrorLine(result);
    expect(message).toMatch(/refused the credentials/);
    expect(message).toContain('redis+cluster://:***@127.0.0.1:');
    expect(result.stderr + result.stdout).not.toContain('not-the-password');
    expect(result.stderr + result.stdout).not.toContain(PASSWORD);
  });

  it('no seed node answering exits 4 at once (fail fast), with --json too', async () => {
    const [a, b] = [await freeClusterPort(), await freeClusterPort()];
    const started = Date.now();
    const result = await cli(['queue', 'stats', '--prefix', '{bananas}:', '--json'], {
      REDIS_URL: `redis+cluster://:${PASSWORD}@127.0.0.1:${a},127.0.0.1:${b}`,
    });
    expect(result.code).toBe(4);
    expect(Date.now() - started).toBeLessThan(15_000);
    expect(JSON.parse(result.stdout)).toMatchObject({ error: { code: 'REDIS_UNAVAILABLE', exitCode: 4 } });
    expect(result.stderr).not.toContain(PASSWORD);
  });

  it('a malformed cluster URL is a usage error (exit 2)', async () => {
    const result = await cli(['queue', 'stats', '--prefix', '{bananas}:'], {
      REDIS_URL: `redis+cluster://:${PASSWORD}@127.0.0.1:1/3`,
    });
    expect(result.code).toBe(2);
    expect(oneErrorLine(result)).toMatch(/no path/);
    expect(result.stderr).not.toContain(PASSWORD);
  });
});

describe('Redis Cluster: the prefix must carry a hash tag', () => {
  it('an untagged prefix is refused (exit 2) with the exact flag to pass, and nothing is written', async () => {
    const before = await totalKeys();
    for (const args of [
      ['job', 'enqueue', 'echo', '--payload', '{}'],
      ['queue', 'stats'],
      ['worker', 'start', '--demo-handlers'],
    ]) {
      const result = await cli([...args, '--prefix', 'bananas:']);
      expect(result.code, args.join(' ')).toBe(2);
      expect(oneErrorLine(result)).toContain(`pass --prefix '{bananas}:'`);
    }
    const viaEnv = await cli(['queue', 'stats'], { BANANAS_PREFIX: 'shop:jobs:' });
    expect(viaEnv.code).toBe(2);
    expect(oneErrorLine(viaEnv)).toContain(`'{shop:jobs}:'`);
    const emptyTag = await cli(['queue', 'stats', '--prefix', '{}bananas:']);
    expect(emptyTag.code).toBe(2);
    expect(await totalKeys()).toBe(before);
  });

  it('the library refuses it too', () => {
    expect(() => new Queue(redis, { prefix: 'bananas:' })).toThrow(UsageError);
    expect(() => new Queue(redis)).toThrow(/hash tag/);
    expect(() => new Queue(redis, { prefix: '{bananas}:' })).not.toThrow();
  });

  it('with a tagged prefix every key of a deployment is in one slot', async () => {
    const queue = new Queue(redis, { prefix: '{bananas}:' });
    const k = queue.keys;
    const names = [
      k.job('a'),
      k.job('zzz'),
      k.queue('high'),
      k.queue('low', 'gpu'),
      k.processing,
      k.dead,
      k.scheduled,
      k.leases,
      k.leaseOwners,
      k.signal('gpu'),
      k.result('a'),
      k.resultNotify('a'),
      k.workers,
      k.worker('w1'),
      k.stats,
      k.statsMinute(1),
      k.scanTemp('run', 'refs'),
      k.schedule('s'),
      k.scheduleLock('s'),
    ];
    const slots = new Set<number>();
    for (const name of names) slots.add(Number(await redis.call('CLUSTER', 'KEYSLOT', name)));
    expect(slots.size).toBe(1);
  });
});

describe('Redis Cluster: SCAN', () => {
  it('scanKeys visits every master, not the one node a SCAN happens to reach', async () => {
    const tag = randomBytes(4).toString('hex');
    const written = Array.from({ length: 300 }, (_, i) => `probe-${tag}:${i}`);
    for (const key of written) await redis.set(key, '1', 'EX', 600);
    const perMaster = await Promise.all(
      masterNodes(redis).map(async (node) => {
        let n = 0;
        let cursor = '0';
        do {
          const [next, keys] = await node.scan(cursor, 'MATCH', `probe-${tag}:*`, 'COUNT', 1000);
          cursor = next;
          n += keys.length;
        } while (cursor !== '0');
        return n;
      }),
    );
    expect(perMaster.filter((n) => n > 0).length).toBe(3);
    const found = new Set<string>();
    for await (const batch of scanKeys(redis, `probe-${tag}:*`, { count: 50 }))
      for (const key of batch) found.add(key);
    expect([...found].sort()).toEqual([...written].sort());
  });
});

describe('Redis Cluster: the engine', () => {
  it('enqueue, dequeue, complete, retry, dead-letter, promote and recover', async () => {
    const prefix = taggedPrefix();
    const queue = new Queue(redis, { prefix });
    const k = queue.keys;
    // A worker that took a job and died: its lease runs out and a live worker recovers the job.
    const ghostJob = await queue.enqueue('ok', { ghost: true }, { priority: 'high' });
    const taken = await queue.dequeue({
      workerId: 'ghost',
      leaseMs: 300,
      max: 1,
      lists: queue.listsServed(['high'], ['default']),
    });
    expect(taken.map((e) => e.id)).toEqual([ghostJob.id]);
    expect(await redis.lrange(k.processing, 0, -1)).toEqual([ghostJob.id]);
    const ok = await queue.enqueueBatch([
      ...Array.from({ length: 20 }, (_, i) => ({
        name: 'ok',
        payload: { i },
        priority: (['high', 'normal', 'low'] as const)[i % 3],
      })),
      ...Array.from({ length: 10 }, (_, i) => ({ name: 'ok', payload: { i }, routingKey: 'gpu' })),
    ]);
    const flaky = await queue.enqueue('flaky', {}, { maxRetries: 3 });
    const bad = await queue.enqueue('bad', {}, { maxRetries: 2 });
    const delayed = await queue.enqueue('ok', { delayed: true }, { delayMs: 400 });
    expect(await redis.zscore(k.scheduled, delayed.id)).not.toBeNull();

    const failedOnce = new Set<string>();
    startWorker(
      prefix,
      {
        ok: () => ({ done: true }),
        flaky: (job) => {
          if (!failedOnce.has(job.id)) {
            failedOnce.add(job.id);
            throw new Error('transient');
          }
          return 'second time lucky';
        },
        bad: () => {
          throw new Error('always broken');
        },
      },
      { routingKeys: ['default', 'gpu'], concurrency: 5, leaseMs: 2000 },
    );
    const allOk = [...ok.enqueued.map((j) => j.id), delayed.id, ghostJob.id, flaky.id];
    await waitFor(
      async () => {
        const statuses = await Promise.all(allOk.map((id) => redis.hget(k.result(id), 'status')));
        return statuses.every((s) => s === 'completed');
      },
      20_000,
      'every good job completed',
    );
    await waitFor(
      async () => (await redis.lrange(k.dead, 0, -1)).includes(bad.id),
      10_000,
      'bad dead-lettered',
    );
    const flakyDoc = decodeJob((await redis.get(k.job(flaky.id))) as string);
    expect(flakyDoc.ok && flakyDoc.job.attempts).toBe(1);
    const badDoc = decodeJob((await redis.get(k.job(bad.id))) as string);
    expect(badDoc.ok && [badDoc.job.status, badDoc.job.attempts, badDoc.job.error]).toEqual([
      'failed',
      2,
      'always broken',
    ]);
    expect(await redis.llen(k.processing)).toBe(0);
    expect(await redis.zcard(k.leases)).toBe(0);
    expect(await redis.zcard(k.scheduled)).toBe(0);
    expect(await redis.hget(k.stats, 'completed')).toBe(String(allOk.length));
  });
});

describe('Redis Cluster: operator commands', () => {
  it('job enqueue/get, queue stats, dlq requeue, scan corrupt, health and doctor', async () => {
    const prefix = taggedPrefix();
    const queue = new Queue(redis, { prefix });
    const k = queue.keys;
    const enqueued = await cli([
      'job',
      'enqueue',
      'send',
      '--payload',
      '{"to":"x"}',
      '--prefix',
      prefix,
      '--json',
    ]);
    expect(enqueued.code).toBe(0);
    const { id } = JSON.parse(enqueued.stdout) as { id: string };
    const get = await cli(['job', 'get', id, '--prefix', prefix, '--json']);
    expect(get.code).toBe(0);
    expect(JSON.parse(get.stdout)).toMatchObject({ id, job: { name: 'send', payload: { to: 'x' } } });

    // Three dead jobs.
    const dead: string[] = [];
    for (let i = 0; i < 3; i++) {
      const job = await queue.enqueue('doomed', { i }, { maxRetries: 1 });
      dead.push(job.id);
    }
    startWorker(prefix, { doomed: () => Promise.reject(new Error('no')) }, { jobTypes: ['doomed'] });
    await waitFor(async () => (await redis.llen(k.dead)) === 3, 10_000, 'three dead jobs');
    await Promise.all(workers.splice(0).map((w) => w.stop()));

    const stats = await cli(['queue', 'stats', '--prefix', prefix, '--json']);
    expect(stats.code).toBe(0);
    const parsed = JSON.parse(stats.stdout) as { ready: { total: number }; dead_letter: { depth: number } };
    expect(parsed.ready.total).toBe(1);
    expect(parsed.dead_letter.depth).toBe(3);

    const requeue = await cli([
      'dlq',
      'requeue',
      '--all',
      '--to',
      'low',
      '--yes',
      '--json',
      '--prefix',
      prefix,
    ]);
    expect(requeue.code).toBe(0);
    expect(await redis.llen(k.dead)).toBe(0);
    expect((await redis.lrange(k.queue('low'), 0, -1)).sort()).toEqual([...dead].sort());

    const clean = await cli(['scan', 'corrupt', '--prefix', prefix, '--json']);
    expect(clean.code).toBe(0);
    // A corrupt document in a ready list, and an id without a document.
    await redis.set(k.job('broken'), '{not json');
    await redis.lpush(k.queue('normal'), 'broken', 'ghost');
    const scan = await cli(['scan', 'corrupt', '--prefix', prefix, '--json']);
    expect(scan.code).toBe(7);
    const text = scan.stdout;
    expect(text).toContain('broken');
    expect(text).toContain('ghost');
    const repairDir = mkdtempSync(join(tmpdir(), 'bananas-scale-repair-'));
    try {
      const backup = join(repairDir, 'before-repair.jsonl');
      const repair = await cli([
        'scan',
        'corrupt',
        '--repair',
        '--yes',
        '--backup',
        backup,
        '--prefix',
        prefix,
        '--json',
      ]);
      expect(repair.code, repair.stderr).toBe(7);
      expect(readFileSync(backup, 'utf8')).toContain(`${prefix}queue:normal`);
    } finally {
      rmSync(repairDir, { recursive: true, force: true });
    }
    expect(await redis.lrange(k.dead, 0, -1)).toContain('broken');
    expect(await redis.lrange(k.queue('normal'), 0, -1)).not.toContain('ghost');
    // No temporary scan keys left behind.
    const leftovers: string[] = [];
    for await (const batch of scanKeys(redis, `${escapeGlob(prefix)}scan:*`)) leftovers.push(...batch);
    expect(leftovers).toEqual([]);

    // More of the scripts: a stuck job recovered, a job deleted, the dead-letter queue backed up and cleared.
    const stuck = await queue.enqueue('stuck', {}, { priority: 'high' });
    await redis.rpush(k.processing, stuck.id);
    await redis.lrem(k.queue('high'), 0, stuck.id);
    await redis.zadd(k.leases, Date.now() - 60_000, stuck.id);
    await redis.hset(k.leaseOwners, stuck.id, 'gone-worker');
    const recover = await cli(['processing', 'recover', '--yes', '--json', '--prefix', prefix]);
    expect(recover.code, recover.stderr).toBe(0);
    expect(await redis.lrange(k.queue('high'), 0, -1)).toContain(stuck.id);
    expect(await redis.llen(k.processing)).toBe(0);
    const deleted = await cli(['job', 'delete', id, '--yes', '--json', '--prefix', prefix]);
    expect(deleted.code, deleted.stderr).toBe(0);
    expect(await redis.exists(k.job(id))).toBe(0);
    const backupDir = mkdtempSync(join(tmpdir(), 'bananas-scale-dlq-'));
    try {
      const backup = join(backupDir, 'dlq.jsonl');
      const clear = await cli(['dlq', 'clear', '--backup', backup, '--yes', '--json', '--prefix', prefix]);
      expect(clear.code, clear.stderr).toBe(0);
      expect(await redis.llen(k.dead)).toBe(0);
      const restore = await cli(['dlq', 'restore', '--in', backup, '--yes', '--json', '--prefix', prefix]);
      expect(restore.code, restore.stderr).toBe(0);
      expect(await redis.lrange(k.dead, 0, -1)).toEqual(['broken']);
    } finally {
      rmSync(backupDir, { recursive: true, force: true });
    }

    const health = await cli(['health', '--prefix', prefix, '--json']);
    const report = JSON.parse(health.stdout) as { checks: Array<{ name: string; message: string }> };
    expect([0, 5, 6]).toContain(health.code);
    const memory = report.checks.find((c) => c.name === 'memory');
    expect(memory?.message).toMatch(/worst of 3 masters/);

    const doctor = await cli(['doctor', '--prefix', prefix, '--json']);
    expect([0, 5, 6]).toContain(doctor.code);
    const diag = JSON.parse(doctor.stdout) as {
      nodes: Array<{ address: string; holds_prefix: boolean }>;
      keys: { scanned: number };
      findings: Array<{ section: string; node?: string }>;
    };
    expect(diag.nodes).toHaveLength(3);
    expect(diag.nodes.filter((n) => n.holds_prefix)).toHaveLength(1);
    expect(new Set(diag.findings.filter((f) => f.section === 'memory').map((f) => f.node)).size).toBe(3);
    expect(diag.keys.scanned).toBeGreaterThan(4);
  });
});
