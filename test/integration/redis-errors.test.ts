/**
 * A Redis that answers with an error: keys of the wrong type (WRONGTYPE), a full Redis (`maxmemory` with
 * `noeviction`: OOM), a Redis busy running a script (BUSY), a read-only replica (READONLY), and writes
 * paused (CLIENT PAUSE WRITE). For each, the built CLI prints one line on stderr (no stack trace), exits
 * with the README's code, and a snapshot of every key under the prefix proves nothing changed. Read-only
 * commands keep working where Redis still answers reads (a full Redis, a replica). A private redis-server
 * and a replica of it, because the cases change server settings.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Keys } from '../../src/core/keys.js';
import {
  cleanEnv,
  oneErrorLine,
  runCli,
  snapshotBuild,
  type CliResult,
  type SnapshotBuild,
} from '../helpers/cli.js';
import { freshPrefix, rawClient, waitFor } from '../helpers/context.js';
import { RedisServer } from '../helpers/redis-server.js';
import { deadJobDocument, jobDocument } from '../helpers/seed.js';
import { snapshot } from '../helpers/snapshot.js';

let build: SnapshotBuild;
let master: RedisServer;
let replica: RedisServer;
let redis: Redis;
let scratch: string;

beforeAll(async () => {
  build = await snapshotBuild();
  master = await RedisServer.start();
  replica = await RedisServer.start({ args: ['--replicaof', '127.0.0.1', String(master.port)] });
  redis = rawClient(master.url);
  scratch = mkdtempSync(join(tmpdir(), 'bananas-redis-errors-'));
}, 60_000);

afterAll(async () => {
  redis?.disconnect();
  await replica?.destroy();
  await master?.destroy();
  build?.remove();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

function cli(url: string, args: string[]): Promise<CliResult> {
  return runCli(build.bin, args, { env: cleanEnv({ REDIS_URL: url }), timeoutMs: 30_000 });
}

/** A dead job and a ready job under `prefix`, as every case starts from. */
async function seed(prefix: string): Promise<Keys> {
  const keys = new Keys(prefix);
  await redis.set(keys.job('dead-1'), deadJobDocument('dead-1'), 'EX', 604800);
  await redis.lpush(keys.dead, 'dead-1');
  await redis.set(keys.job('ready-1'), jobDocument('ready-1'));
  await redis.lpush(keys.queue('normal'), 'ready-1');
  return keys;
}

/** Waits until the replica has everything written to the master so far. */
async function replicaCaughtUp(prefix: string): Promise<void> {
  const marker = `${prefix}test:synced`;
  await redis.set(marker, '1');
  const client = rawClient(replica.url);
  try {
    await waitFor(async () => (await client.get(marker)) === '1', 15_000, 'the replica to catch up');
  } finally {
    client.disconnect();
  }
}

type Fault = 'oom' | 'busy' | 'replica';

/** Puts the server into the fault's state; returns how to leave it. */
async function enter(fault: Fault | undefined): Promise<() => Promise<void>> {
  if (fault === 'oom') {
    await redis.config('SET', 'maxmemory-policy', 'noeviction');
    await redis.config('SET', 'maxmemory', '1');
    return async () => void (await redis.config('SET', 'maxmemory', '0'));
  }
  if (fault === 'busy') {
    await redis.config('SET', 'busy-reply-threshold', '50');
    const blocker = rawClient(master.url);
    blocker.on('error', () => undefined);
    const running = blocker.eval('while true do end', 0).catch(() => undefined);
    await new Promise((r) => setTimeout(r, 200));
    return async () => {
      await redis.call('SCRIPT', 'KILL');
      await running;
      blocker.disconnect();
    };
  }
  return async () => undefined;
}

interface FailureCase {
  what: string;
  fault?: Fault;
  /** Damages the seeded state (a key of the wrong type). */
  damage?: (redis: Redis, keys: Keys) => Promise<unknown>;
  args: (keys: Keys) => string[];
  exit: number;
  message: RegExp;
}

const WRONGTYPE = /WRONGTYPE Operation against a key holding the wrong kind of value/;

const failures: FailureCase[] = [
  {
    what: 'dlq inspect: the dead-letter list is a hash',
    damage: (r, k) => r.del(k.dead).then(() => r.hset(k.dead, 'a', 'b')),
    args: () => ['dlq', 'inspect'],
    exit: 8,
    message: /queue:dead: WRONGTYPE/,
  },
  {
    what: 'dlq requeue --all: the dead-letter list is a hash',
    damage: (r, k) => r.del(k.dead).then(() => r.hset(k.dead, 'a', 'b')),
    args: () => ['dlq', 'requeue', '--all', '--yes'],
    exit: 8,
    message: /queue:dead: WRONGTYPE/,
  },
  {
    what: 'dlq backup: the dead-letter list is a string',
    damage: (r, k) => r.set(k.dead, 'x'),
    args: (k) => ['dlq', 'backup', '--out', join(scratch, `${k.prefix}backup.jsonl`)],
    exit: 8,
    message: WRONGTYPE,
  },
  {
    what: 'dlq clear: the dead-letter list is a string',
    damage: (r, k) => r.set(k.dead, 'x'),
    args: () => ['dlq', 'clear', '--no-backup', '--yes'],
    exit: 8,
    message: WRONGTYPE,
  },
  {
    what: 'job get: the job key is a list',
    damage: (r, k) => r.del(k.job('ready-1')).then(() => r.rpush(k.job('ready-1'), 'x')),
    args: () => ['job', 'get', 'ready-1'],
    exit: 8,
    message: /job:ready-1 holds the wrong kind of value \(WRONGTYPE/,
  },
  {
    what: 'job delete: the job key is a list',
    damage: (r, k) => r.del(k.job('ready-1')).then(() => r.rpush(k.job('ready-1'), 'x')),
    args: () => ['job', 'delete', 'ready-1', '--yes'],
    exit: 8,
    message: /job:ready-1 holds the wrong kind of value/,
  },
  {
    what: 'job requeue: the high queue is a string',
    damage: (r, k) => r.set(k.queue('high'), 'x'),
    args: () => ['job', 'requeue', 'dead-1', '--to', 'high'],
    exit: 8,
    message: WRONGTYPE,
  },
  // Redis does not roll back a script that fails half way: each script checks the kind of every key it
  // writes before its first write, so nothing is taken out of one place without landing in the other.
  {
    what: 'job enqueue: the high queue is a string',
    damage: (r, k) => r.set(k.queue('high'), 'x'),
    args: () => ['job', 'enqueue', 'echo', '--priority', 'high'],
    exit: 8,
    message: /^WRONGTYPE \S+queue:high holds a string, not a list; nothing was changed$/,
  },
  {
    what: 'dlq requeue --all --to high: the high queue is a string',
    damage: (r, k) => r.set(k.queue('high'), 'x'),
    args: () => ['dlq', 'requeue', '--all', '--to', 'high', '--yes'],
    exit: 8,
    message: /^WRONGTYPE \S+queue:high holds a string, not a list; nothing was changed$/,
  },
  {
    what: "dlq requeue --id: the job's own queue is a hash",
    damage: (r, k) => r.del(k.queue('normal')).then(() => r.hset(k.queue('normal'), 'a', 'b')),
    args: () => ['dlq', 'requeue', '--id', 'dead-1', '--yes'],
    exit: 8,
    message: /^WRONGTYPE \S+queue:normal holds a hash, not a list; nothing was changed$/,
  },
  {
    what: 'processing recover: an expired lease whose queue is a string',
    damage: (r, k) =>
      r
        .multi()
        .del(k.queue('normal'))
        .lpush(k.processing, 'ready-1')
        .zadd(k.leases, 1000, 'ready-1')
        .hset(k.leaseOwners, 'ready-1', 'gone:1:abcdef')
        .set(k.queue('normal'), 'x')
        .exec(),
    args: () => ['processing', 'recover', '--yes'],
    exit: 8,
    message: /^WRONGTYPE \S+queue:normal holds a string, not a list; nothing was changed$/,
  },
  {
    what: 'dlq restore --to queue: the normal queue is a string',
    damage: async (r, k) => {
      const file = join(scratch, `${k.prefix}restore.jsonl`);
      const backup = await cli(master.url, ['dlq', 'backup', '--out', file, '--prefix', k.prefix]);
      expect(backup.code).toBe(0);
      // The job is gone since the backup, and its queue now holds a string.
      await r.del(k.dead, k.job('dead-1'), k.queue('normal'));
      await r.set(k.queue('normal'), 'x');
    },
    args: (k) => [
      'dlq',
      'restore',
      '--in',
      join(scratch, `${k.prefix}restore.jsonl`),
      '--to',
      'queue',
      '--yes',
    ],
    exit: 8,
    message: /WRONGTYPE \S+queue:normal holds a string, not a list; nothing was changed$/,
  },
  {
    what: 'queue peek: the high queue is a string',
    damage: (r, k) => r.set(k.queue('high'), 'x'),
    args: () => ['queue', 'peek', 'high'],
    exit: 2,
    message: /queue:high holds a string, not a list of job ids; it is not a queue/,
  },
  {
    what: 'job enqueue: Redis is full (OOM, noeviction)',
    fault: 'oom',
    args: () => ['job', 'enqueue', 'echo'],
    exit: 4,
    message: /^OOM command not allowed when used memory > 'maxmemory'\.$/,
  },
  {
    what: 'scan corrupt: Redis is full',
    fault: 'oom',
    args: () => ['scan', 'corrupt'],
    exit: 8,
    message: /not enough Redis memory for the scan: .*nothing was changed/,
  },
  {
    what: 'job enqueue: Redis is busy running a script',
    fault: 'busy',
    args: () => ['job', 'enqueue', 'echo'],
    exit: 4,
    message: /cannot reach Redis at redis:\/\/127\.0\.0\.1:\d+: BUSY Redis is busy running a script/,
  },
  {
    what: 'queue stats: Redis is busy running a script',
    fault: 'busy',
    args: () => ['queue', 'stats'],
    exit: 4,
    message: /BUSY/,
  },
  {
    what: 'job enqueue: a read-only replica',
    fault: 'replica',
    args: () => ['job', 'enqueue', 'echo'],
    exit: 4,
    message: /^READONLY You can't write against a read only replica\.$/,
  },
  {
    what: 'dlq requeue --all: a read-only replica',
    fault: 'replica',
    args: () => ['dlq', 'requeue', '--all', '--yes'],
    exit: 4,
    message: /^READONLY/,
  },
  {
    what: 'job delete: a read-only replica',
    fault: 'replica',
    args: () => ['job', 'delete', 'ready-1', '--yes'],
    exit: 4,
    message: /^READONLY/,
  },
  {
    what: 'scan corrupt: a read-only replica',
    fault: 'replica',
    args: () => ['scan', 'corrupt'],
    exit: 4,
    message: /^READONLY/,
  },
];

// Sequential: the faults change the whole server.
describe('Redis answers with an error: one line, the documented exit code, nothing changed', () => {
  it.for(failures)('$what', async ({ fault, damage, args, exit, message }) => {
    const keys = await seed(freshPrefix());
    await damage?.(redis, keys);
    if (fault === 'replica') await replicaCaughtUp(keys.prefix);
    const before = await snapshot(redis, keys.prefix);
    const url = fault === 'replica' ? replica.url : master.url;
    const argv = [...args(keys), '--prefix', keys.prefix];
    const leave = await enter(fault);
    let human: CliResult;
    let json: CliResult;
    try {
      [human, json] = await Promise.all([cli(url, argv), cli(url, [...argv, '--json'])]);
    } finally {
      await leave();
    }
    // Nothing changed, checked first: a script failing half way would have lost or orphaned something.
    expect(await snapshot(redis, keys.prefix)).toEqual(before);
    expect(human.timedOut).toBe(false);
    expect(human.code).toBe(exit);
    expect(human.stdout).toBe('');
    expect(oneErrorLine(human)).toMatch(message);
    expect(human.stderr).not.toMatch(/\n\s+at /);
    expect(json.code).toBe(exit);
    const { error } = JSON.parse(json.stdout) as { error: { message: string; exitCode: number } };
    expect(error.exitCode).toBe(exit);
    expect(error.message).toMatch(message);
    expect(existsSync(join(scratch, `${keys.prefix}backup.jsonl`))).toBe(false);
  });
});

describe('reads keep working where Redis still answers them', () => {
  it.for([
    ['queue stats', 'oom', ['queue', 'stats'], 0],
    ['queue peek', 'oom', ['queue', 'peek', 'normal'], 0],
    ['dlq inspect', 'oom', ['dlq', 'inspect'], 0],
    ['job get', 'oom', ['job', 'get', 'ready-1'], 0],
    ['health (memory is critical)', 'oom', ['health'], 6],
    ['queue stats', 'replica', ['queue', 'stats'], 0],
    ['dlq inspect', 'replica', ['dlq', 'inspect'], 0],
    ['job get', 'replica', ['job', 'get', 'ready-1'], 0],
  ] as Array<[string, Fault, string[], number]>)('%s on a %s Redis', async ([, fault, args, exit]) => {
    const keys = await seed(freshPrefix());
    if (fault === 'replica') await replicaCaughtUp(keys.prefix);
    const leave = await enter(fault);
    let result: CliResult;
    try {
      result = await cli(fault === 'replica' ? replica.url : master.url, [
        ...args,
        '--json',
        '--prefix',
        keys.prefix,
      ]);
    } finally {
      await leave();
    }
    expect(result.stderr).toBe('');
    expect(result.code).toBe(exit);
    const report = JSON.parse(result.stdout) as Record<string, unknown>;
    expect(report).not.toHaveProperty('error');
    if (args[0] === 'health') {
      const checks = report.checks as Array<{ name: string; status: string }>;
      expect(checks.find((c) => c.name === 'memory')?.status).toBe('critical');
    }
    if (args[0] === 'queue' && args[1] === 'stats') {
      expect(report).toMatchObject({ ready: { total: 1 }, dead_letter: { depth: 1 }, problems: [] });
    }
  });

  // Redis refuses a script on a full Redis only at a write that may grow memory before any other write:
  // these scripts remove first, so moving jobs and deleting them still work when Redis is full.
  it('on a full Redis, dlq requeue and job delete still work (they free or move memory)', async () => {
    const keys = await seed(freshPrefix());
    const leave = await enter('oom');
    let requeue: CliResult;
    let remove: CliResult;
    try {
      requeue = await cli(master.url, [
        'dlq',
        'requeue',
        '--all',
        '--yes',
        '--json',
        '--prefix',
        keys.prefix,
      ]);
      remove = await cli(master.url, [
        'job',
        'delete',
        'ready-1',
        '--yes',
        '--json',
        '--prefix',
        keys.prefix,
      ]);
    } finally {
      await leave();
    }
    expect([requeue.code, requeue.stderr]).toEqual([0, '']);
    expect(JSON.parse(requeue.stdout)).toMatchObject({ requeued: 1 });
    expect([remove.code, remove.stderr]).toEqual([0, '']);
    expect(await redis.lrange(keys.queue('normal'), 0, -1)).toEqual(['dead-1']);
    expect(await redis.exists(keys.job('ready-1'), keys.dead)).toBe(0);
  }, 60_000); // two CLI processes: on a loaded machine each can take over 10 s to start

  it('CLIENT PAUSE WRITE: a write waits for the pause to end, then succeeds', async () => {
    const keys = await seed(freshPrefix());
    await redis.call('CLIENT', 'PAUSE', '1500', 'WRITE');
    const started = Date.now();
    const result = await cli(master.url, ['job', 'enqueue', 'echo', '--json', '--prefix', keys.prefix]);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1000);
    const { id } = JSON.parse(result.stdout) as { id: string };
    expect(await redis.lrange(keys.queue('normal'), 0, -1)).toEqual([id, 'ready-1']);
  });
});
