/**
 * The CLI as operators and scripts use it: `job enqueue`, `worker start` and `demo` against the test Redis
 * (each test under its own key prefix), checking exit codes (src/cli/exit-codes.ts), that errors are one
 * line on stderr, that --json prints one JSON document, that bad input writes nothing and that no password
 * is ever printed. Exit codes and messages are checked on the built CLI run as a child process; the
 * success paths of `job enqueue` also run in-process from the sources.
 */
import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Config } from '@oclif/core';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import JobEnqueue from '../../src/commands/job/enqueue.js';
import { escapeGlob } from '../../src/core/keys.js';
import {
  CLI_TIME_LIMIT_MS,
  cleanEnv,
  keysUnder,
  oneErrorLine,
  runCli,
  scanKeys,
  startCli,
  type CliResult,
  type SnapshotBuild,
} from '../helpers/cli.js';
import { freshPrefix, onCluster, rawClient, testRedisUrl, waitFor } from '../helpers/context.js';
import { closeTestBed, openTestBed, runInProcess } from '../helpers/in-process.js';
import { SilencingProxy } from '../helpers/proxy.js';
import { RedisServer } from '../helpers/redis-server.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
/** 2030-01-02T03:04:05Z in Unix seconds. */
const AT_2030 = 1893553445;

let build: SnapshotBuild;
let config: Config;
let redis: Redis;
let scratch: string;

beforeAll(async () => {
  ({ build, config, redis, scratch } = await openTestBed({ scratch: 'bananas-cli-scratch-' }));
});

afterAll(() => closeTestBed({ build, redis, scratch }));

/** The built CLI with REDIS_URL pointing at the test Redis (unless `env` says otherwise). */
function cli(
  args: string[],
  env: Record<string, string | undefined> = {},
  timeoutMs = CLI_TIME_LIMIT_MS,
  cwd?: string,
) {
  return runCli(build.bin, args, { env: cleanEnv({ REDIS_URL: testRedisUrl(), ...env }), timeoutMs, cwd });
}

/** `job enqueue ...args` on the built CLI. */
function enqueueCli(args: string[], env: Record<string, string | undefined> = {}) {
  return cli(['job', 'enqueue', ...args], env);
}

/** Runs `job enqueue ...args` under `prefix` in this process (from the sources), capturing its output. */
function enqueueInProcess(prefix: string, ...args: string[]) {
  return runInProcess(config, JobEnqueue, args, { prefix });
}

describe('job enqueue', () => {
  it('prints the new id; the document and the LPUSH on the priority list exist under the prefix', async () => {
    const prefix = freshPrefix();
    const run = await enqueueInProcess(prefix, 'echo', '--payload', '{"a":1}', '--priority', 'high');
    expect(run.exit).toBe(0);
    expect(run.stderr).toBe('');
    const id = run.stdout.trim();
    expect(id).toMatch(UUID);
    expect(run.stdout).toBe(`${id}\n`);

    const raw = await redis.get(`${prefix}job:${id}`);
    expect(raw).not.toBeNull();
    expect(raw).toContain('"payload":{"a":1}');
    const doc = JSON.parse(raw as string) as Record<string, unknown>;
    expect(doc).toMatchObject({ id, name: 'echo', priority: 'high', status: 'pending', payload: { a: 1 } });
    expect(await redis.lrange(`${prefix}queue:high`, 0, -1)).toEqual([id]);
    for (const other of ['queue:normal', 'queue:low', 'queue:scheduled']) {
      expect(await redis.exists(`${prefix}${other}`), other).toBe(0);
    }
  });

  it('--json prints exactly one JSON document on stdout and nothing else', async () => {
    const prefix = freshPrefix();
    const result = await enqueueCli(['echo', '--payload', '{"a":1}', '--json', '--prefix', prefix]);
    expect(result.code).toBe(0);
    expect(result.stderr).toBe('');
    const doc = JSON.parse(result.stdout) as Record<string, unknown>;
    expect(doc).toMatchObject({
      name: 'echo',
      priority: 'normal',
      queue: `${prefix}queue:normal`,
      status: 'pending',
    });
    expect(doc.id).toMatch(UUID);
    expect(await redis.lrange(`${prefix}queue:normal`, 0, -1)).toEqual([doc.id]);
  });

  it('--payload @file reads the payload from the file, bytes kept', async () => {
    const prefix = freshPrefix();
    const file = join(scratch, 'payload.json');
    writeFileSync(file, '{"order_id": 12345678901234567890, "note": "caf\u00e9"}\n');
    const run = await enqueueInProcess(prefix, 'echo', '--payload', `@${file}`);
    expect(run.exit).toBe(0);
    const id = run.stdout.trim();
    const raw = await redis.get(`${prefix}job:${id}`);
    expect(raw).toContain('"payload":{"order_id": 12345678901234567890, "note": "caf\u00e9"}');
  });

  it('--route gpu puts the job on <prefix>route:gpu:queue:normal', async () => {
    const prefix = freshPrefix();
    const run = await enqueueInProcess(prefix, 'transcode', '--route', 'gpu', '--json');
    expect(run.exit).toBe(0);
    const job = run.result as { id: string; queue: string; routing_key: string };
    expect(job.queue).toBe(`${prefix}route:gpu:queue:normal`);
    expect(job.routing_key).toBe('gpu');
    expect(await redis.lrange(`${prefix}route:gpu:queue:normal`, 0, -1)).toEqual([job.id]);
    expect(await redis.exists(`${prefix}queue:normal`)).toBe(0);
    expect(JSON.parse((await redis.get(`${prefix}job:${job.id}`)) as string)).toMatchObject({
      routing_key: 'gpu',
    });
  });

  it('--delay 10s puts the job on the scheduled set with a score of about now + 10 s', async () => {
    const prefix = freshPrefix();
    const before = Date.now() / 1000;
    const run = await enqueueInProcess(prefix, 'echo', '--delay', '10s', '--json');
    const after = Date.now() / 1000;
    expect(run.exit).toBe(0);
    const job = run.result as { id: string; queue: string; status: string };
    expect(job.queue).toBe(`${prefix}queue:scheduled`);
    const score = Number(await redis.zscore(`${prefix}queue:scheduled`, job.id));
    expect(score).toBeGreaterThanOrEqual(before + 10 - 0.01);
    expect(score).toBeLessThanOrEqual(after + 10 + 0.01);
    expect(await redis.exists(`${prefix}queue:normal`)).toBe(0);
    expect(JSON.parse((await redis.get(`${prefix}job:${job.id}`)) as string)).toMatchObject({
      status: 'scheduled',
    });
  });

  it('--at 2030-01-02T03:04:05Z scores the job 1893553445', async () => {
    const prefix = freshPrefix();
    const run = await enqueueInProcess(prefix, 'report', '--at', '2030-01-02T03:04:05Z', '--json');
    expect(run.exit).toBe(0);
    const job = run.result as { id: string; scheduled_for?: string };
    expect(Number(await redis.zscore(`${prefix}queue:scheduled`, job.id))).toBe(AT_2030);
    expect(job.scheduled_for).toMatch(/^2030-01-02T03:04:05/);
  });

  it('--at without an offset is UTC whatever the local time zone', async () => {
    const prefix = freshPrefix();
    const result = await enqueueCli(['report', '--at', '2030-01-02T03:04:05', '--prefix', prefix], {
      TZ: 'America/New_York',
    });
    expect(result.code).toBe(0);
    const id = result.stdout.trim();
    expect(Number(await redis.zscore(`${prefix}queue:scheduled`, id))).toBe(AT_2030);
  });

  it('--id that exists already exits 8 with one line and leaves the first job unchanged', async () => {
    const prefix = freshPrefix();
    const first = await enqueueCli(['echo', '--id', 'custom-1', '--payload', '{"v":1}', '--prefix', prefix]);
    expect(first.code).toBe(0);
    expect(first.stdout).toBe('custom-1\n');
    const original = await redis.get(`${prefix}job:custom-1`);
    expect(original).toContain('"payload":{"v":1}');

    const second = await enqueueCli([
      'other',
      '--id',
      'custom-1',
      '--payload',
      '{"v":2}',
      '--priority',
      'high',
      '--prefix',
      prefix,
    ]);
    expect(second.code).toBe(8);
    expect(second.stdout).toBe('');
    expect(oneErrorLine(second)).toMatch(/"custom-1" already exists/);

    const json = await enqueueCli(['echo', '--id', 'custom-1', '--json', '--prefix', prefix]);
    expect(json.code).toBe(8);
    expect(JSON.parse(json.stdout)).toMatchObject({ error: { code: 'DUPLICATE_JOB', exitCode: 8 } });

    expect(await redis.get(`${prefix}job:custom-1`)).toBe(original);
    expect(await redis.lrange(`${prefix}queue:normal`, 0, -1)).toEqual(['custom-1']);
    expect(await redis.exists(`${prefix}queue:high`)).toBe(0);
  });
});

describe.concurrent('job enqueue: bad input exits 2 with one line and writes nothing', () => {
  const cases: Array<[what: string, args: string[], message: RegExp]> = [
    ['payload that is not JSON', ['echo', '--payload', '{a:1}'], /--payload is not valid JSON/],
    [
      'payload file that does not exist',
      ['echo', '--payload', '@/nonexistent'],
      /--payload: cannot read \/nonexistent: ENOENT/,
    ],
    ['unknown priority', ['echo', '--priority', 'urgent'], /urgent.*high, normal, low/],
    ['routing key with a space', ['echo', '--route', 'a b'], /invalid routing key "a b"/],
    ['delay without a unit', ['echo', '--delay', '10'], /invalid --delay "10".*duration such as/],
    [
      '--delay with --at',
      ['echo', '--delay', '5s', '--at', '2030-01-02T03:04:05Z'],
      /--at.*cannot also be provided.*--delay/,
    ],
    ['--at that is not a time', ['echo', '--at', 'yesterday'], /--at: invalid time "yesterday"/],
    [
      '--at 30 February',
      ['echo', '--at', '2030-02-30T00:00:00Z'],
      /--at: invalid time "2030-02-30T00:00:00Z"/,
    ],
    ['unknown flag', ['echo', '--bogus'], /Nonexistent flag: --bogus/],
    ['missing job name', [], /Missing 1 required arg: name/],
  ];

  it.for(cases)('%s', async ([, args, message], { expect }) => {
    const prefix = freshPrefix();
    const result = await enqueueCli([...args, '--prefix', prefix]);
    expect(result.code).toBe(2);
    expect(result.stdout).toBe('');
    expect(oneErrorLine(result)).toMatch(message);
    expect(await keysUnder(redis, prefix)).toEqual([]);
  });

  it('--json: the error is one JSON document on stdout, and one line on stderr', async ({ expect }) => {
    const prefix = freshPrefix();
    const result = await enqueueCli(['echo', '--delay', '10', '--json', '--prefix', prefix]);
    expect(result.code).toBe(2);
    expect(JSON.parse(result.stdout)).toMatchObject({ error: { code: 'USAGE', exitCode: 2 } });
    expect(result.stdout.trim().split('\n')).toHaveLength(1);
    oneErrorLine(result);
    expect(await keysUnder(redis, prefix)).toEqual([]);
  });

  it.for<[string, string]>([
    ['--at', 'yesterday'],
    ['--route', 'a b'],
    ['--id', 'has space'],
  ])('%s %j is a usage error (2) even when Redis is unreachable', async ([flag, value], { expect }) => {
    const result = await enqueueCli(['echo', flag, value, '--redis-url', 'redis://127.0.0.1:1']);
    expect(result.code).toBe(2);
    oneErrorLine(result);
  });
});

describe('Redis connection failures exit 4', () => {
  let auth: RedisServer;
  const SECRET = 's3cret-pw';
  const WRONG = 'wrong-pw-XYZ';

  beforeAll(async () => {
    auth = await RedisServer.start({ args: ['--requirepass', SECRET] });
  });

  afterAll(async () => {
    await auth?.destroy();
  });

  const authUrl = (password?: string) => `redis://${password ? `:${password}@` : ''}127.0.0.1:${auth.port}`;

  function expectNoSecret(result: CliResult): void {
    for (const secret of [SECRET, WRONG]) {
      expect(result.stdout).not.toContain(secret);
      expect(result.stderr).not.toContain(secret);
    }
  }

  it('unreachable Redis: exit 4 and one line saying it cannot reach Redis', async () => {
    const result = await enqueueCli([
      'echo',
      '--redis-url',
      'redis://127.0.0.1:1',
      '--prefix',
      freshPrefix(),
    ]);
    expect(result.timedOut).toBe(false);
    expect(result.code).toBe(4);
    expect(result.stdout).toBe('');
    expect(oneErrorLine(result)).toMatch(/cannot reach Redis at redis:\/\/127\.0\.0\.1:1/);

    const json = await enqueueCli(['echo', '--redis-url', 'redis://127.0.0.1:1', '--json']);
    expect(json.code).toBe(4);
    expect(JSON.parse(json.stdout)).toMatchObject({ error: { code: 'REDIS_UNAVAILABLE', exitCode: 4 } });
  });

  describe.skipIf(onCluster())('a Redis that stops answering without closing the connection', () => {
    let proxy: SilencingProxy;
    let proxyUrl: string;
    beforeAll(async () => {
      const upstream = new URL(testRedisUrl());
      proxy = await SilencingProxy.start(upstream.hostname, Number(upstream.port));
      proxyUrl = `redis://127.0.0.1:${proxy.port}`;
    });
    afterAll(() => proxy?.close());

    it('never answering the handshake: exit 4 after 10 s, one line saying no reply came', async () => {
      proxy.silenceNew('bananas-');
      try {
        const started = Date.now();
        const result = await cli(
          ['health', '--json', '--redis-url', proxyUrl, '--prefix', freshPrefix()],
          {},
          30_000,
        );
        expect(result.timedOut).toBe(false);
        expect(Date.now() - started).toBeGreaterThanOrEqual(10_000);
        expect(result.code).toBe(4);
        expect(JSON.parse(result.stdout)).toMatchObject({
          status: 'unreachable',
          error: { code: 'REDIS_UNAVAILABLE', exitCode: 4 },
        });
        expect(oneErrorLine(result)).toBe(
          `cannot reach Redis at ${proxyUrl}: no reply within 10 s (connection dropped)`,
        );
      } finally {
        proxy.silenceNew(undefined);
      }
    }, 40_000);

    it('going silent in the middle of a command: exit 4, one line saying no reply came', async () => {
      const run = startCli(
        build.bin,
        ['queue', 'stats', '--watch', '1s', '--redis-url', proxyUrl, '--prefix', freshPrefix()],
        { env: cleanEnv(), timeoutMs: 30_000 },
      );
      await run.waitForOutput(/high/i);
      expect(proxy.silence('bananas-')).toBe(1);
      const result = await run.done;
      expect(result.timedOut).toBe(false);
      expect(result.code).toBe(4);
      expect(oneErrorLine(result)).toBe(
        `cannot reach Redis at ${proxyUrl}: no reply within 10 s (connection dropped)`,
      );
    }, 40_000);
  });

  it('wrong password: exit 4, one line, and neither password appears anywhere', async () => {
    const prefix = freshPrefix();
    const viaFlag = await enqueueCli(['echo', '--redis-url', authUrl(WRONG), '--prefix', prefix]);
    expect(viaFlag.code).toBe(4);
    expect(viaFlag.stdout).toBe('');
    expect(oneErrorLine(viaFlag)).toContain(`127.0.0.1:${auth.port}`);
    expectNoSecret(viaFlag);

    const json = await enqueueCli(['echo', '--redis-url', authUrl(WRONG), '--json', '--prefix', prefix]);
    expect(json.code).toBe(4);
    expect(JSON.parse(json.stdout)).toMatchObject({ error: { exitCode: 4 } });
    oneErrorLine(json);
    expectNoSecret(json);

    const viaEnv = await enqueueCli(['echo', '--json', '--prefix', prefix], {
      REDIS_URL: authUrl(WRONG),
    });
    expect(viaEnv.code).toBe(4);
    expectNoSecret(viaEnv);

    const noPassword = await enqueueCli(['echo', '--prefix', prefix], { REDIS_URL: authUrl() });
    expect(noPassword.code).toBe(4);
    expect(oneErrorLine(noPassword)).toMatch(/refused the credentials: NOAUTH/);
  });

  it('a refused password is reported as such (REDIS_AUTH), not as an unreachable server', async () => {
    const json = await enqueueCli([
      'echo',
      '--redis-url',
      authUrl(WRONG),
      '--json',
      '--prefix',
      freshPrefix(),
    ]);
    expect(JSON.parse(json.stdout)).toMatchObject({ error: { code: 'REDIS_AUTH', exitCode: 4 } });
    expect(json.stderr).toMatch(/refused the credentials/);
  });

  it('the right password works', async () => {
    const prefix = freshPrefix();
    const result = await enqueueCli(['echo', '--redis-url', authUrl(SECRET), '--json', '--prefix', prefix]);
    expect(result.code).toBe(0);
    expect(result.stderr).toBe('');
    expectNoSecret(result);
    const { id } = JSON.parse(result.stdout) as { id: string };
    const client = rawClient(authUrl(SECRET));
    try {
      expect(await client.lrange(`${prefix}queue:normal`, 0, -1)).toEqual([id]);
    } finally {
      client.disconnect();
    }
  });
});

describe.concurrent('worker start: bad configuration exits 2 at once with one line', () => {
  const base = ['worker', 'start', '--log-format', 'json'];
  const cases: Array<[what: string, args: string[], env: Record<string, string>, message: RegExp]> = [
    [
      'WORKER_CONCURRENCY=abc',
      ['--demo-handlers'],
      { WORKER_CONCURRENCY: 'abc' },
      /WORKER_CONCURRENCY.*whole number.*"abc"/,
    ],
    [
      'WORKER_CONCURRENCY=0',
      ['--demo-handlers'],
      { WORKER_CONCURRENCY: '0' },
      /WORKER_CONCURRENCY.*whole number.*"0"/,
    ],
    [
      'WORKER_PRIORITIES=high,urgent',
      ['--demo-handlers'],
      { WORKER_PRIORITIES: 'high,urgent' },
      /WORKER_PRIORITIES.*unknown priority "urgent"/,
    ],
    [
      'WORKER_ROUTING_KEYS=a b',
      ['--demo-handlers'],
      { WORKER_ROUTING_KEYS: 'a b' },
      /WORKER_ROUTING_KEYS.*invalid routing key "a b"/,
    ],
    ['JOB_TIMEOUT=10', ['--demo-handlers'], { JOB_TIMEOUT: '10' }, /JOB_TIMEOUT.*"10".*duration/],
    [
      '--handlers ./does-not-exist.js',
      ['--handlers', './does-not-exist.js'],
      {},
      /handlers module not found: .*does-not-exist\.js/,
    ],
    ['no handlers', [], {}, /no handlers: give --handlers/],
  ];

  it.for(cases)('%s', async ([, args, env, message], { expect }) => {
    const prefix = freshPrefix();
    // A worker that started would never exit: the limit only has to outlast seven CLIs starting at once on
    // a loaded machine (each takes 2 to 3 s alone on a slow one).
    const result = await cli([...base, ...args, '--prefix', prefix], env, 25_000, scratch);
    expect(result.timedOut, 'the worker should exit, not run').toBe(false);
    expect(result.code).toBe(2);
    expect(result.stdout).toBe('');
    expect(oneErrorLine(result)).toMatch(message);
    expect(await keysUnder(redis, prefix)).toEqual([]);
  });

  it('the same settings, valid, start a worker that runs jobs until SIGTERM, then exits 0', async ({
    expect,
  }) => {
    const prefix = freshPrefix();
    const worker = startCli(build.bin, [...base, '--demo-handlers', '--prefix', prefix], {
      env: cleanEnv({
        REDIS_URL: testRedisUrl(),
        WORKER_CONCURRENCY: '2',
        WORKER_PRIORITIES: 'high,normal',
        WORKER_ROUTING_KEYS: 'default',
        JOB_TIMEOUT: '5s',
      }),
      timeoutMs: 20_000,
    });
    const enqueued = await enqueueCli(['echo', '--payload', '{"hi":1}', '--prefix', prefix]);
    expect(enqueued.code).toBe(0);
    const id = enqueued.stdout.trim();
    await waitFor(
      async () => (await redis.hget(`${prefix}result:${id}`, 'status')) === 'completed',
      10_000,
      'the job',
    );
    worker.child.kill('SIGTERM');
    const result = await worker.done;
    expect(result.timedOut).toBe(false);
    expect(result.code).toBe(0);
  });
});

describe('demo', () => {
  it('--redis-url --json: one JSON report, jobs completed and dead-lettered, no keys left behind', async () => {
    const prefix = freshPrefix();
    const demoKeys = `${escapeGlob(prefix.replace(/:$/, ''))}-demo-*`;
    const run = startCli(build.bin, ['demo', '--redis-url', testRedisUrl(), '--prefix', prefix, '--json'], {
      env: cleanEnv(),
      timeoutMs: 45_000,
    });
    // Watch the demo's keys appear, so "none left" below means it removed them.
    let sawKeys = false;
    let exited = false;
    const watching = (async () => {
      while (!exited && !sawKeys) {
        sawKeys = (await scanKeys(redis, demoKeys)).length > 0;
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    const result = await run.done;
    exited = true;
    await watching;

    expect(result.timedOut).toBe(false);
    expect(result.code).toBe(0);
    expect(result.stderr).toBe('');
    const report = JSON.parse(result.stdout) as {
      prefix: string;
      redis: string;
      throwaway_redis: boolean;
      jobs: unknown[];
      totals: { enqueued: number; completed: number; dead_letter: number };
    };
    expect(report.prefix).toMatch(new RegExp(`^${prefix.replace(/:$/, '')}-demo-[0-9a-f]{8}:$`));
    expect(report.throwaway_redis).toBe(false);
    expect(report.redis).toBe(testRedisUrl());
    expect(report.totals.completed).toBeGreaterThan(0);
    expect(report.totals.dead_letter).toBeGreaterThanOrEqual(3);
    expect(report.jobs).toHaveLength(report.totals.enqueued);
    expect(sawKeys).toBe(true);
    expect(await scanKeys(redis, demoKeys)).toEqual([]);
  }, 50_000);

  it('without REDIS_URL and without redis-server on PATH: one line saying how to get Redis', async () => {
    const bin = mkdtempSync(join(tmpdir(), 'bananas-path-'));
    try {
      symlinkSync(process.execPath, join(bin, 'node'));
      const result = await runCli(build.bin, ['demo'], {
        env: cleanEnv({ REDIS_URL: undefined, PATH: bin }),
        timeoutMs: CLI_TIME_LIMIT_MS,
      });
      expect(result.timedOut).toBe(false);
      expect(result.code).toBe(4);
      expect(result.stdout).toBe('');
      const message = oneErrorLine(result);
      expect(message).toMatch(/install redis-server/);
      expect(message).toMatch(/--redis-url/);
    } finally {
      rmSync(bin, { recursive: true, force: true });
    }
  });
});

describe.concurrent('--help', () => {
  it.for<[string[], RegExp]>([
    [[], /TOPICS[\s\S]*job[\s\S]*worker[\s\S]*COMMANDS[\s\S]*demo/],
    [['job', 'enqueue'], /--priority=<option>/],
    [['worker', 'start'], /env: WORKER_CONCURRENCY/],
    [['demo'], /--redis-url/],
  ])('%j --help exits 0 and shows the usage', async ([command, content], { expect }) => {
    const result = await cli([...command, '--help']);
    expect(result.code).toBe(0);
    expect(result.stderr).toBe('');
    expect(result.stdout).toContain(`$ bananas ${command.length > 0 ? command.join(' ') : '[COMMAND]'}`);
    expect(result.stdout).toMatch(content);
  });
});
