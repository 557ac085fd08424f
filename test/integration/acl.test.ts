/**
 * The Redis ACL rules of docs/security.md, as written there (the two `ACL SETUSER` lines are read from the
 * file), on the shared test Redis under a fresh prefix (users unique per run, deleted afterwards): a worker
 * user enqueues, completes and dead-letters jobs (library and `worker start`); a read-only operator user runs
 * every read-only command (doctor reports CONFIG GET as not allowed); `scan corrupt` and every command that
 * changes state fail for it with one line and exit 4, and change nothing. No password is ever printed.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PRIORITIES } from '../../src/core/keys.js';
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
  startCli,
  type CliProcess,
  type SnapshotBuild,
} from '../helpers/cli.js';
import { freshPrefix, onCluster, rawClient, testRedisUrl, waitFor } from '../helpers/context.js';
import { snapshot } from '../helpers/snapshot.js';

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
  scanner: { name: `bt-acl-scanner-${run}`, password: randomBytes(12).toString('hex') },
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
let scratch: string;

beforeAll(async () => {
  admin = rawClient();
  await admin.call('ACL', 'SETUSER', users.worker.name, ...rulesFor('bananas-worker', users.worker.password));
  await admin.call(
    'ACL',
    'SETUSER',
    users.operator.name,
    ...rulesFor('bananas-operator', users.operator.password),
  );
  // docs/security.md: scan corrupt needs the worker's rules, the read-only operator's commands and +unlink.
  const operatorCommands = documentedRules('bananas-operator').filter((rule) => rule.startsWith('+'));
  await admin.call(
    'ACL',
    'SETUSER',
    users.scanner.name,
    ...rulesFor('bananas-worker', users.scanner.password),
    ...operatorCommands,
    '+unlink',
  );
  build = await snapshotBuild();
  scratch = mkdtempSync(join(tmpdir(), 'bananas-acl-'));
}, 60_000);

afterAll(async () => {
  if (admin) {
    await admin.call('ACL', 'DELUSER', users.worker.name, users.operator.name, users.scanner.name);
    const keys = await keysUnder(admin, prefix);
    if (keys.length > 0) await admin.del(...keys);
    admin.disconnect();
  }
  build?.remove();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

function operatorCli(args: string[]) {
  return runCli(build.bin, [...args, '--prefix', prefix], {
    env: cleanEnv({ REDIS_URL: urlFor(users.operator) }),
    timeoutMs: 45_000,
  });
}

function workerCli(args: string[]) {
  return runCli(build.bin, [...args, '--prefix', prefix], {
    env: cleanEnv({ REDIS_URL: urlFor(users.worker) }),
  });
}

/** Neither password anywhere in a command's output. */
function expectNoPassword(output: string): void {
  expect(output).not.toContain(users.operator.password);
  expect(output).not.toContain(users.worker.password);
}

// ACL users are defined per server; on a cluster every node would need them (not covered here).
describe.skipIf(onCluster())('Redis ACL users (docs/security.md)', () => {
  let completedId: string;
  let deadId: string;
  let heldId: string;

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

  it('a worker user set up with the earlier rules (no +hmget) still settles jobs', async () => {
    const earlier = { name: `bt-acl-earlier-${run}`, password: randomBytes(12).toString('hex') };
    const rules = rulesFor('bananas-worker', earlier.password).filter((rule) => rule !== '+hmget');
    expect(rules.length).toBe(rulesFor('bananas-worker', earlier.password).length - 1);
    await admin.call('ACL', 'SETUSER', earlier.name, ...rules);
    expect(await admin.call('ACL', 'DRYRUN', earlier.name, 'HMGET', `${prefix}x`, 'f')).not.toBe('OK');
    expect(await admin.call('ACL', 'DRYRUN', earlier.name, 'HGET', `${prefix}x`, 'f')).toBe('OK');
    const client = rawClient(urlFor(earlier));
    const worker = new Worker({
      handlers: { echo: async (job) => job.data },
      redisUrl: urlFor(earlier),
      prefix,
      concurrency: 20,
      logger: createLogger({ level: 'silent' }),
    });
    try {
      const workerQueue = new Queue(client, { prefix });
      const { enqueued } = await workerQueue.enqueueBatch(
        Array.from({ length: 50 }, (_, i) => ({ name: 'echo', payload: { i } })),
      );
      await worker.start();
      await waitFor(async () => worker.stats().completed === enqueued.length, 10_000, 'every job completed');
      const statuses = await Promise.all(
        enqueued.map((job) => admin.hget(`${prefix}result:${job.id}`, 'status')),
      );
      expect(statuses.every((status) => status === 'completed')).toBe(true);
      expect(await admin.llen(`${prefix}queue:processing`)).toBe(0);
    } finally {
      await worker.stop();
      client.disconnect();
      await admin.call('ACL', 'DELUSER', earlier.name);
    }
  });

  it('the documented worker user gets its lease structures indexed; one refused ZRANGE takes and leases the jobs all the same', async () => {
    const narrow = { name: `bt-acl-narrow-${run}`, password: randomBytes(12).toString('hex') };
    const rules = rulesFor('bananas-worker', narrow.password).filter((rule) => rule !== '+zrange');
    expect(rules.length).toBe(rulesFor('bananas-worker', narrow.password).length - 1);
    await admin.call('ACL', 'SETUSER', narrow.name, ...rules);
    const clients = [rawClient(urlFor(users.worker)), rawClient(urlFor(narrow))];
    try {
      for (const [i, client] of clients.entries()) {
        const p = `${prefix}idx${i}:`;
        const workerQueue = new Queue(client, { prefix: p });
        const { enqueued } = await workerQueue.enqueueBatch(
          Array.from({ length: 20 }, (_, n) => ({ name: 'echo', payload: { n } })),
        );
        const taken = await workerQueue.dequeue({
          workerId: `w${i}`,
          leaseMs: 60_000,
          max: 20,
          lists: workerQueue.listsServed(PRIORITIES, ['default']),
        });
        expect(taken.map((entry) => entry.id).sort()).toEqual(enqueued.map((job) => job.id).sort());
        expect(await admin.zcard(`${p}processing:leases`)).toBe(20);
        expect(await admin.hlen(`${p}processing:owners`)).toBe(20);
        expect(await admin.llen(`${p}queue:processing`)).toBe(20);
        const encoding = await admin.object('ENCODING', `${p}processing:leases`);
        // With the documented rules the set is indexed; without ZRANGE it stays compact.
        if (i === 0) expect(encoding).toBe('skiplist');
        else expect(['listpack', 'ziplist']).toContain(encoding);
      }
    } finally {
      for (const client of clients) client.disconnect();
      await admin.call('ACL', 'DELUSER', narrow.name);
    }
  });

  it('a worker user runs `worker start` through jobs; the read-only operator sees it in worker list and processing list', async () => {
    const enqueued: string[] = [];
    for (const payload of ['{"n":1}', '{"n":2}', '{"n":3}']) {
      const result = await workerCli(['job', 'enqueue', 'echo', '--payload', payload, '--json']);
      expect(result.stderr).toBe('');
      enqueued.push((JSON.parse(result.stdout) as { id: string }).id);
    }
    const held = await workerCli(['job', 'enqueue', 'sleep', '--payload', '{"ms":60000}', '--json']);
    heldId = (JSON.parse(held.stdout) as { id: string }).id;
    const worker: CliProcess = startCli(
      build.bin,
      [
        'worker',
        'start',
        '--demo-handlers',
        '--shutdown-timeout',
        '1s',
        '--prefix',
        prefix,
        '--log-format',
        'json',
      ],
      { env: cleanEnv({ REDIS_URL: urlFor(users.worker) }), timeoutMs: 60_000 },
    );
    try {
      await waitFor(
        async () => {
          const statuses = await Promise.all(
            enqueued.map((id) => admin.hget(`${prefix}result:${id}`, 'status')),
          );
          return statuses.every((status) => status === 'completed');
        },
        15_000,
        'the three echo jobs to complete',
      );
      await waitFor(
        async () => (await admin.lrange(`${prefix}queue:processing`, 0, -1)).includes(heldId),
        10_000,
        'the sleep job to start',
      );

      const workers = await operatorCli(['worker', 'list', '--json']);
      expect(workers.stderr).toBe('');
      expect(workers.code).toBe(0);
      const listed = JSON.parse(workers.stdout) as { live: number; workers: Array<{ pid: number }> };
      expect(listed.live).toBe(1);
      expect(listed.workers.map((w) => w.pid)).toEqual([worker.child.pid]);

      const processing = await operatorCli(['processing', 'list', '--json']);
      expect(processing.stderr).toBe('');
      expect(processing.code).toBe(0);
      const inFlight = JSON.parse(processing.stdout) as { total: number; entries: Array<{ id: string }> };
      expect(inFlight.total).toBe(1);
      expect(inFlight.entries.map((e) => e.id)).toEqual([heldId]);
    } finally {
      worker.child.kill('SIGTERM');
    }
    const { code } = await worker.done;
    expect(code).toBe(0);
    expect(worker.output()).not.toMatch(/NOPERM|"level":(50|60)/); // no error logged
    expect(worker.output()).toContain('Shutdown timeout: unfinished jobs returned to their queue');
    expectNoPassword(worker.output());
    // Shut down mid-sleep: the held job went back to its queue.
    expect(await admin.lrange(`${prefix}queue:normal`, 0, -1)).toEqual([heldId]);
  });

  it('a worker user started on a prefix its keys do not cover stops at once: exit 4, one NOPERM line', async () => {
    const result = await runCli(
      build.bin,
      ['worker', 'start', '--demo-handlers', '--prefix', `other-${prefix}`, '--log-format', 'json'],
      { env: cleanEnv({ REDIS_URL: urlFor(users.worker) }) },
    );
    expect(result.code).toBe(4);
    expect(oneErrorLine(result)).toMatch(/^NOPERM /);
    expectNoPassword(result.stdout + result.stderr);
    expect(await keysUnder(admin, `other-${prefix}`)).toEqual([]);
  });

  it('a read-only operator can run every read-only command', async () => {
    const file = join(scratch, 'dlq.jsonl');
    // Independent reads: run at once.
    const [stats, peek, dlq, backup, job, processing, workers, health, doctor] = await Promise.all([
      operatorCli(['queue', 'stats', '--json']),
      operatorCli(['queue', 'peek', 'normal', '--json']),
      operatorCli(['dlq', 'inspect', '--json']),
      operatorCli(['dlq', 'backup', '--out', file, '--json']),
      operatorCli(['job', 'get', completedId, '--json']),
      operatorCli(['processing', 'list', '--json']),
      operatorCli(['worker', 'list', '--json']),
      operatorCli(['health', '--json']),
      operatorCli(['doctor', '--json']),
    ]);
    expect(stats.stderr).toBe('');
    expect(stats.code).toBe(0);
    expect(JSON.parse(stats.stdout)).toMatchObject({ ready: { total: 1 } });

    expect(peek.stderr).toBe('');
    expect(peek.code).toBe(0);
    expect(JSON.parse(peek.stdout)).toMatchObject({ length: 1, jobs: [{ id: heldId, document: 'ok' }] });

    expect(dlq.stderr).toBe('');
    expect(dlq.code).toBe(0);
    expect(dlq.stdout).toContain(deadId);

    expect(backup.stderr).toBe('');
    expect(backup.code).toBe(0);
    expect(JSON.parse(backup.stdout)).toMatchObject({ entries: 1, documents: 1 });
    expect(readFileSync(file, 'utf8')).toContain(deadId);

    expect(job.stderr).toBe('');
    expect(job.code).toBe(0);
    expect(job.stdout).toContain(completedId);

    expect(processing.code).toBe(0);
    expect(JSON.parse(processing.stdout)).toMatchObject({ total: 0 });

    expect(workers.code).toBe(0);
    expect(JSON.parse(workers.stdout)).toMatchObject({ live: 0 });

    // Critical here (one of the jobs failed), but every check ran: none was refused a command.
    expect(health.stderr).toBe('');
    expect(health.stdout).not.toMatch(/NOPERM/);
    const report = JSON.parse(health.stdout) as { checks: Array<{ name: string; status: string }> };
    expect(report.checks.find((check) => check.name === 'redis')?.status).toBe('ok');

    // CONFIG GET is not granted: doctor says so and carries on.
    expect(doctor.stderr).toBe('');
    expect([0, 5, 6]).toContain(doctor.code);
    const diagnosis = JSON.parse(doctor.stdout) as { findings: Array<{ name: string; message: string }> };
    expect(diagnosis.findings.find((check) => check.name === 'config_get')?.message).toMatch(
      /CONFIG GET is not allowed.*NOPERM/,
    );
    for (const result of [stats, peek, dlq, backup, job, processing, workers, health, doctor]) {
      expectNoPassword(result.stdout + result.stderr);
    }
  }, 60_000);

  it('scan corrupt needs write access for its temporary index: as the read-only operator, exit 4 with one clear line, nothing changed', async () => {
    const before = await snapshot(admin, prefix);
    const [human, json] = await Promise.all([
      operatorCli(['scan', 'corrupt']),
      operatorCli(['scan', 'corrupt', '--json']),
    ]);
    for (const result of [human, json]) {
      expect(result.code).toBe(4);
      expect(oneErrorLine(result)).toMatch(
        /temporary index .*needs a user allowed to write .*NOPERM.*nothing was changed/,
      );
      expectNoPassword(result.stdout + result.stderr);
    }
    expect(human.stdout).toBe('');
    expect(JSON.parse(json.stdout)).toMatchObject({ error: { code: 'REDIS_AUTH', exitCode: 4 } });
    expect(await snapshot(admin, prefix)).toEqual(before);
  });

  it('scan corrupt runs as a user with the worker rules, the operator commands and +unlink, and leaves no index behind', async () => {
    const result = await runCli(build.bin, ['scan', 'corrupt', '--json', '--prefix', prefix], {
      env: cleanEnv({ REDIS_URL: urlFor(users.scanner) }),
    });
    expect(result.stderr).toBe('');
    expect([0, 7]).toContain(result.code);
    expect(JSON.parse(result.stdout)).toHaveProperty('classes');
    expect(await keysUnder(admin, `${prefix}scan:`)).toEqual([]);
  });

  it.for([
    ['dlq requeue --all', ['dlq', 'requeue', '--all', '--yes']],
    ['job requeue', () => ['job', 'requeue', deadId]],
    ['job delete', () => ['job', 'delete', completedId, '--yes']],
    ['job enqueue', ['job', 'enqueue', 'echo']],
    ['processing recover', ['processing', 'recover', '--older-than', '1m', '--include-unleased', '--yes']],
    ['dlq clear', ['dlq', 'clear', '--no-backup', '--yes']],
  ] as Array<[string, string[] | (() => string[])]>)(
    'a read-only operator cannot change anything (%s): exit 4, one NOPERM line, nothing changes',
    async ([what, args]) => {
      if (what === 'processing recover') {
        // Something to recover: an id left in processing without a lease by a crash, long ago.
        const stuck = 'stuck-without-lease';
        await admin.set(
          `${prefix}job:${stuck}`,
          JSON.stringify({
            ...JSON.parse((await admin.get(`${prefix}job:${heldId}`))!),
            id: stuck,
            status: 'processing',
            updated_at: '2025-01-01T00:00:00Z',
          }),
        );
        await admin.lpush(`${prefix}queue:processing`, stuck);
      }
      const before = await snapshot(admin, prefix);
      const result = await operatorCli(typeof args === 'function' ? args() : args);
      expect(result.code).toBe(4); // the README's "Redis refused the credentials (or the command)" code
      expect(result.stdout).toBe('');
      expect(oneErrorLine(result)).toMatch(/NOPERM/);
      expectNoPassword(result.stdout + result.stderr);
      expect(await snapshot(admin, prefix)).toEqual(before);
    },
  );
});
