/**
 * The Redis ACL rules of docs/security.md, as written there (the two `ACL SETUSER` lines are read from the
 * file), on the shared test Redis under a fresh prefix (users unique per run, deleted afterwards): a worker
 * user completes and dead-letters jobs; a read-only operator user can inspect (doctor reports CONFIG GET as
 * not allowed) but `dlq requeue` fails with one NOPERM line and changes nothing.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/core/logger.js';
import { Queue } from '../../src/core/queue.js';
import { Worker } from '../../src/core/worker.js';
import {
  cleanEnv,
  keysUnder,
  oneErrorLine,
  PROJECT_ROOT,
  runCli,
  snapshotBuild,
  type SnapshotBuild,
} from '../helpers/cli.js';
import { freshPrefix, rawClient, testRedisUrl, waitFor } from '../helpers/context.js';

/** The `ACL SETUSER <user> ...` line for `user` in docs/security.md, split into arguments. */
function documentedRules(user: string): string[] {
  const doc = readFileSync(join(PROJECT_ROOT, 'docs/security.md'), 'utf8');
  const line = doc.split('\n').find((l) => l.startsWith(`ACL SETUSER ${user} `));
  if (!line) throw new Error(`docs/security.md has no "ACL SETUSER ${user}" line`);
  return line.split(/\s+/).slice(3);
}

const run = randomBytes(4).toString('hex');
const prefix = freshPrefix();
const users = {
  worker: { name: `bt-acl-worker-${run}`, password: randomBytes(12).toString('hex') },
  operator: { name: `bt-acl-operator-${run}`, password: randomBytes(12).toString('hex') },
};

/** The documented rules for this run: the test's user name, password and prefix. */
function rulesFor(documented: string, password: string): string[] {
  return documentedRules(documented).map((rule) =>
    rule
      .replace(/^>(WORKER|OPERATOR)_PASSWORD$/, `>${password}`)
      .replace(/^(%R~|~|&)bananas:/, `$1${prefix}`),
  );
}

function urlFor(user: { name: string; password: string }): string {
  const url = new URL(testRedisUrl());
  url.username = user.name;
  url.password = user.password;
  return url.toString();
}

let admin: Redis;
let build: SnapshotBuild;

beforeAll(async () => {
  admin = rawClient();
  await admin.call('ACL', 'SETUSER', users.worker.name, ...rulesFor('bananas-worker', users.worker.password));
  await admin.call(
    'ACL',
    'SETUSER',
    users.operator.name,
    ...rulesFor('bananas-operator', users.operator.password),
  );
  build = await snapshotBuild();
}, 60_000);

afterAll(async () => {
  if (admin) {
    await admin.call('ACL', 'DELUSER', users.worker.name, users.operator.name);
    const keys = await keysUnder(admin, prefix);
    if (keys.length > 0) await admin.del(...keys);
    admin.disconnect();
  }
  build?.remove();
});

function operatorCli(args: string[]) {
  return runCli(build.bin, [...args, '--prefix', prefix], {
    env: cleanEnv({ REDIS_URL: urlFor(users.operator) }),
  });
}

describe('Redis ACL users (docs/security.md)', () => {
  let completedId: string;
  let deadId: string;

  it('a worker user enqueues, completes a job and dead-letters a failing one', async () => {
    const client = rawClient(urlFor(users.worker));
    try {
      const workerQueue = new Queue(client, { prefix });
      completedId = (await workerQueue.enqueue('echo', { a: 1 })).id;
      deadId = (await workerQueue.enqueue('fail', {}, { maxRetries: 0 })).id;
    } finally {
      client.disconnect();
    }
    const worker = new Worker({
      handlers: {
        echo: async (job) => job.data,
        fail: async () => {
          throw new Error('boom');
        },
      },
      redisUrl: urlFor(users.worker),
      prefix,
      logger: createLogger({ level: 'silent' }),
    });
    await worker.start();
    try {
      await waitFor(
        async () =>
          (await admin.hget(`${prefix}result:${completedId}`, 'status')) === 'completed' &&
          (await admin.lrange(`${prefix}queue:dead`, 0, -1)).includes(deadId),
        10_000,
        'one job completed and one dead-lettered',
      );
    } finally {
      await worker.stop();
    }
    expect(worker.stats()).toMatchObject({ completed: 1, failed: 1 });
  });

  it('a read-only operator can run queue stats, dlq inspect, job get, health and doctor', async () => {
    const stats = await operatorCli(['queue', 'stats', '--json']);
    expect(stats.stderr).toBe('');
    expect(stats.code).toBe(0);
    JSON.parse(stats.stdout);

    const dlq = await operatorCli(['dlq', 'inspect', '--json']);
    expect(dlq.stderr).toBe('');
    expect(dlq.code).toBe(0);
    expect(dlq.stdout).toContain(deadId);

    const job = await operatorCli(['job', 'get', completedId, '--json']);
    expect(job.stderr).toBe('');
    expect(job.code).toBe(0);
    expect(job.stdout).toContain(completedId);

    const health = await operatorCli(['health', '--json']);
    // Critical here (one of two jobs failed), but every check ran: none was refused a command.
    expect(health.stderr).toBe('');
    expect(health.stdout).not.toMatch(/NOPERM/);
    const report = JSON.parse(health.stdout) as { checks: Array<{ name: string; status: string }> };
    expect(report.checks.find((check) => check.name === 'redis')?.status).toBe('ok');

    // CONFIG GET is not granted: doctor says so and carries on.
    const doctor = await operatorCli(['doctor', '--json']);
    expect(doctor.stderr).toBe('');
    expect([0, 5, 6]).toContain(doctor.code);
    const diagnosis = JSON.parse(doctor.stdout) as { findings: Array<{ name: string; message: string }> };
    expect(diagnosis.findings.find((check) => check.name === 'config_get')?.message).toMatch(
      /CONFIG GET is not allowed.*NOPERM/,
    );
  });

  it('a read-only operator cannot requeue: one clear error line, nothing changes', async () => {
    const before = await admin.lrange(`${prefix}queue:dead`, 0, -1);
    const requeue = await operatorCli(['dlq', 'requeue', '--all', '--yes']);
    expect(requeue.code).toBe(4); // the README's "Redis refused the credentials" code
    expect(oneErrorLine(requeue)).toMatch(/NOPERM/);
    expect(requeue.stderr).not.toContain(users.operator.password);
    expect(await admin.lrange(`${prefix}queue:dead`, 0, -1)).toEqual(before);
  });
});
