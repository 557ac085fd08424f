/**
 * `health` and `doctor`: the verdicts CI, cron and the on-call engineer act on. Queue-level checks run on
 * the shared test Redis under a fresh prefix with the runbook's broken states seeded as raw keys (deep
 * queues, a growing DLQ, failures in the per-minute counters, workers alive but idle, orphans in
 * processing, due jobs nobody promotes); server-level checks (memory, eviction policy, persistence,
 * slowlog) run on private redis-servers configured the way the runbook left them. Both commands are
 * read-only: tests snapshot the prefix before and after. Exit codes, --json and one-line errors are
 * checked on the built CLI.
 */
import type { Config } from '@oclif/core';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import Doctor, { type DoctorResult } from '../../src/commands/doctor.js';
import Health, { type HealthResult } from '../../src/commands/health.js';
import { Keys } from '../../src/core/keys.js';
import { categorize } from '../../src/inspector/doctor.js';
import type { HealthCheck } from '../../src/inspector/health.js';
import { cleanEnv, oneErrorLine, runCli, type CliResult, type SnapshotBuild } from '../helpers/cli.js';
import { freshPrefix, testRedisUrl } from '../helpers/context.js';
import { closeTestBed, inProcessRunner, openTestBed } from '../helpers/in-process.js';
import { RedisServer } from '../helpers/redis-server.js';
import { jobDocument, loadVectors, seedVectors } from '../helpers/seed.js';
import { snapshot } from '../helpers/snapshot.js';

let build: SnapshotBuild;
let config: Config;
let redis: Redis;

// End-to-end tests spawn the CLI; on a loaded machine a spawn can take several seconds.
vi.setConfig({ testTimeout: 60_000 });

beforeAll(async () => {
  ({ build, config, redis } = await openTestBed());
});

afterAll(() => closeTestBed({ build, redis }));

/** Runs a command class in this process (from the sources), capturing output and the exit code. */
const inProcess = inProcessRunner(() => config);

/** `health --json` in-process: the printed document (also when the exit code is 5 or 6). */
async function health(prefix: string, ...flags: string[]): Promise<{ exit: number; report: HealthResult }> {
  const run = await inProcess<HealthResult>(Health, ['--json', ...flags], { prefix });
  expect(run.stderr).toBe('');
  const report = JSON.parse(run.stdout) as HealthResult;
  expect(report.exit_code).toBe(run.exit);
  return { exit: run.exit, report };
}

function check(report: HealthResult, name: string): HealthCheck {
  const found = report.checks.find((c) => c.name === name);
  if (!found) throw new Error(`no check ${name} in ${JSON.stringify(report.checks.map((c) => c.name))}`);
  return found;
}

function cli(args: string[], env: Record<string, string | undefined> = {}): Promise<CliResult> {
  return runCli(build.bin, args, { env: cleanEnv({ REDIS_URL: testRedisUrl(), ...env }) });
}

async function fill(key: string, count: number, tag = 'j'): Promise<void> {
  await redis.lpush(key, ...Array.from({ length: count }, (_, i) => `${tag}${i}`));
}

async function heartbeat(
  prefix: string,
  id: string,
  fields: Record<string, string | number> = {},
  lastSeen = Date.now(),
): Promise<void> {
  await redis.zadd(`${prefix}workers`, lastSeen, id);
  await redis.hset(`${prefix}worker:${id}`, {
    id,
    host: 'h',
    pid: 1,
    concurrency: 10,
    priorities: 'high,normal,low',
    routing_keys: 'default',
    job_types: '',
    in_flight: 0,
    processed: 0,
    ...fields,
  });
}

const minuteKey = (prefix: string, minutesAgo = 0) =>
  `${prefix}stats:minute:${Math.floor(Date.now() / 60_000) - minutesAgo}`;

const ago = (ms: number) => new Date(Date.now() - ms).toISOString();

// ---------------------------------------------------------------------------------------------------
// health

describe('health', () => {
  it('an idle, empty deployment is healthy: exit 0, every check ok, nothing written', async () => {
    const prefix = freshPrefix();
    const { exit, report } = await health(prefix);
    expect(exit).toBe(0);
    expect(report.status).toBe('ok');
    expect(report.checks.map((c) => [c.name, c.status])).toEqual([
      ['redis', 'ok'],
      ['memory', 'ok'],
      ['eviction_policy', 'ok'],
      ['queue_depth', 'ok'],
      ['dead_letter', 'ok'],
      ['error_rate', 'ok'],
      ['workers', 'ok'],
      ['processing', 'ok'],
      ['scheduled', 'ok'],
    ]);
    expect(report.redis.latency_ms).toBeGreaterThan(0);
    expect(check(report, 'eviction_policy').value).toBe('noeviction');
    expect(check(report, 'error_rate')).toMatchObject({ value: null, unit: 'percent' });
    expect(await snapshot(redis, prefix)).toEqual({});
  });

  it('queue depth and DLQ: warning at the runbook level, critical above --max-depth / --max-dlq', async () => {
    const prefix = freshPrefix();
    await heartbeat(prefix, 'w:1:aaaaaa', { in_flight: 10 }); // busy: consuming
    await fill(`${prefix}queue:normal`, 100);
    await fill(`${prefix}queue:dead`, 10, 'd');
    const before = await snapshot(redis, prefix);
    let { exit, report } = await health(prefix);
    expect(await snapshot(redis, prefix)).toEqual(before);
    expect(exit).toBe(5);
    expect(report.status).toBe('warning');
    expect(check(report, 'queue_depth')).toMatchObject({ status: 'warning', value: 100, unit: 'jobs' });
    expect(check(report, 'queue_depth').message).toMatch(/deepest: normal with 100 jobs/);
    expect(check(report, 'dead_letter')).toMatchObject({ status: 'warning', value: 10 });

    await fill(`${prefix}route:gpu:queue:low`, 1001, 'g');
    await heartbeat(prefix, 'gpu:1:bbbbbb', { routing_keys: 'gpu', in_flight: 1 });
    ({ exit, report } = await health(prefix));
    expect(exit).toBe(6);
    expect(check(report, 'queue_depth')).toMatchObject({ status: 'critical', value: 1001 });
    expect(check(report, 'queue_depth').message).toMatch(/deepest: gpu:low with 1,001 jobs; 1,101 ready/);
    ({ exit, report } = await health(prefix, '--max-depth', '5000', '--max-dlq', '5'));
    expect(exit).toBe(6);
    expect(check(report, 'queue_depth').status).toBe('warning');
    expect(check(report, 'dead_letter')).toMatchObject({
      status: 'critical',
      threshold: 'warning ≥ 5, critical > 5',
    });
  });

  it('error rate from the minute counters: retried attempts are not failures; > max is critical', async () => {
    const prefix = freshPrefix();
    await redis.hset(minuteKey(prefix), { completed: 90, failed: 10, retried: 5000 });
    let { report } = await health(prefix);
    expect(check(report, 'error_rate')).toMatchObject({ status: 'warning', value: 10 });
    expect(check(report, 'error_rate').message).toMatch(
      /10% over 5 min: 10 failed for good, 90 completed \(5,000 retried attempts, not counted as failures\)/,
    );
    await redis.hset(minuteKey(prefix, 1), { failed: 1 });
    ({ report } = await health(prefix));
    expect(check(report, 'error_rate')).toMatchObject({ status: 'critical', value: 10.89 });
    ({ report } = await health(prefix, '--max-error-rate', '50'));
    expect(check(report, 'error_rate').status).toBe('warning');
    await redis.hset(minuteKey(prefix), { failed: 1, completed: 99 });
    await redis.del(minuteKey(prefix, 1));
    ({ report } = await health(prefix, '--max-error-rate', '50'));
    expect(check(report, 'error_rate')).toMatchObject({ status: 'ok', value: 1 });
  });

  it('workers: no live worker while jobs wait is critical', async () => {
    const prefix = freshPrefix();
    await redis.lpush(`${prefix}queue:high`, 'h1');
    await heartbeat(prefix, 'dead:1:aaaaaa', { in_flight: 4 }, Date.now() - 60_000); // stale
    const { exit, report } = await health(prefix);
    expect(exit).toBe(6);
    expect(check(report, 'workers')).toMatchObject({ status: 'critical', value: 0 });
    expect(check(report, 'workers').message).toMatch(/^no live workers while 1 job is queued/);
  });

  it('workers: live workers that serve none of the waiting queues are critical', async () => {
    const prefix = freshPrefix();
    await redis.lpush(`${prefix}route:gpu:queue:high`, 'g1');
    await heartbeat(prefix, 'cpu:1:aaaaaa', { priorities: 'high', routing_keys: 'default', in_flight: 2 });
    const { report } = await health(prefix);
    expect(check(report, 'workers')).toMatchObject({ status: 'critical', value: 1 });
    expect(check(report, 'workers').message).toMatch(
      /1 live worker, but none serves gpu:high \(1 job waiting\)/,
    );
  });

  it('workers: alive, idle, nothing settled and a job waiting for minutes is "alive but not consuming"', async () => {
    const prefix = freshPrefix();
    await redis.lpush(`${prefix}queue:normal`, 'old');
    await redis.set(
      `${prefix}job:old`,
      jobDocument('old', { created_at: ago(600_000), updated_at: ago(300_000) }),
    );
    await heartbeat(prefix, 'idle:1:aaaaaa');
    await heartbeat(prefix, 'idle:2:bbbbbb', { priorities: 'low' }); // serves nothing waiting
    const before = await snapshot(redis, prefix);
    let { exit, report } = await health(prefix);
    expect(exit).toBe(6);
    expect(check(report, 'workers').status).toBe('critical');
    expect(check(report, 'workers').message).toMatch(
      /^workers alive but not consuming: 2 live workers, 1 job waiting \(oldest for 5m0\ds\), nothing settled in the last 2 min and nothing in flight$/,
    );
    expect(await snapshot(redis, prefix)).toEqual(before);

    // A job settled in the last two minutes is evidence of consumption …
    await redis.hset(minuteKey(prefix, 1), { completed: 1 });
    ({ exit, report } = await health(prefix));
    expect(check(report, 'workers')).toMatchObject({ status: 'ok' });
    expect(check(report, 'workers').message).toMatch(
      /consuming: 1 job settled in the last 2 min, 0 in flight/,
    );
    // … but one settled three minutes ago is not.
    await redis.rename(minuteKey(prefix, 1), minuteKey(prefix, 3));
    ({ report } = await health(prefix));
    expect(check(report, 'workers').status).toBe('critical');
    // A job in flight on a serving worker is evidence too.
    await heartbeat(prefix, 'idle:1:aaaaaa', { in_flight: 1 });
    ({ report } = await health(prefix));
    expect(check(report, 'workers').status).toBe('ok');
  });

  it('workers: idle workers and a job that arrived a moment ago are fine; legacy lists are served by default workers', async () => {
    const prefix = freshPrefix();
    await redis.lpush(`${prefix}route:default:queue:normal`, 'fresh');
    await redis.set(
      `${prefix}job:fresh`,
      jobDocument('fresh', { created_at: ago(3000), updated_at: ago(3000) }),
    );
    await heartbeat(prefix, 'idle:1:aaaaaa');
    const { exit, report } = await health(prefix);
    expect(exit).toBe(0);
    expect(check(report, 'workers').message).toMatch(
      /^1 live worker, idle; the oldest of 1 waiting job arrived [345]s ago$/,
    );
  });

  it('processing: an orphan without a lease older than --max-processing-age is critical; expired leases warn', async () => {
    const prefix = freshPrefix();
    const now = Date.now();
    await heartbeat(prefix, 'w:1:aaaaaa');
    await redis.lpush(`${prefix}queue:processing`, 'orphan', 'held');
    await redis.set(`${prefix}job:orphan`, jobDocument('orphan', { updated_at: ago(20 * 60_000) }));
    await redis.zadd(`${prefix}processing:leases`, now + 30_000, 'held');
    let { exit, report } = await health(prefix);
    expect(exit).toBe(6);
    expect(check(report, 'processing')).toMatchObject({ status: 'critical', unit: 'seconds' });
    expect(check(report, 'processing').value).toBeGreaterThanOrEqual(1200);
    expect(check(report, 'processing').message).toMatch(
      /^2 jobs in processing, 1 leased, 1 without a lease \(oldest untouched for 20m0\ds\): jobs without a lease are never recovered/,
    );
    ({ exit, report } = await health(prefix, '--max-processing-age', '1h'));
    expect([exit, check(report, 'processing').status]).toEqual([0, 'ok']);

    // A lease two minutes past its deadline: live bananas workers would have recovered it.
    await redis.zadd(`${prefix}processing:leases`, now - 120_000, 'held');
    ({ exit, report } = await health(prefix, '--max-processing-age', '1h'));
    expect([exit, check(report, 'processing').status]).toEqual([5, 'warning']);
    expect(check(report, 'processing').message).toMatch(
      /1 leased \(1 past the lease, oldest by 2m0\ds\).*expired leases are not being recovered/,
    );
  });

  it('scheduled: due jobs nobody promotes for over a minute are a warning', async () => {
    const prefix = freshPrefix();
    await redis.zadd(
      `${prefix}queue:scheduled`,
      Date.now() / 1000 - 300,
      'late',
      Date.now() / 1000 + 600,
      'later',
    );
    let { exit, report } = await health(prefix);
    expect(exit).toBe(5);
    expect(check(report, 'scheduled')).toMatchObject({ status: 'warning', value: 1 });
    expect(check(report, 'scheduled').message).toMatch(
      /^1 scheduled job due, the oldest 5m0\ds ago: nothing is promoting/,
    );
    await redis.zadd(`${prefix}queue:scheduled`, Date.now() / 1000 - 2, 'late');
    ({ exit, report } = await health(prefix));
    expect([exit, check(report, 'scheduled').status]).toEqual([0, 'ok']);
  });

  it('the original Go state (vectors): critical, with the reasons an operator needs', async () => {
    const prefix = freshPrefix();
    await seedVectors(redis, loadVectors('go-original'), prefix);
    const before = await snapshot(redis, prefix);
    const { exit, report } = await health(prefix);
    expect(exit).toBe(6);
    expect(check(report, 'workers').message).toMatch(/^no live workers while 4 jobs are queued/);
    expect(check(report, 'processing').status).toBe('critical'); // c0ffee00…: no lease since 2025
    expect(check(report, 'scheduled').status).toBe('warning');
    expect(check(report, 'dead_letter')).toMatchObject({ status: 'ok', value: 4 });
    expect(await snapshot(redis, prefix)).toEqual(before);
  });

  it('human output: the verdict, one line per check, thresholds under the failing ones', async () => {
    const prefix = freshPrefix();
    await fill(`${prefix}queue:dead`, 12, 'd');
    const run = await inProcess<HealthResult>(Health, [], { prefix });
    expect(run.exit).toBe(5);
    expect(run.stdout).toMatch(/^Health: WARNING \(Redis \d+\.\d+\.\d+, prefix \{?bt-[0-9a-f]+\}?:\)\n/);
    expect(run.stdout).toMatch(/\n {2}warning {3}dead_letter {6}12 {12}12 jobs in the dead-letter queue/);
    expect(run.stdout).toMatch(/\(warning ≥ 10, critical > 100\)/);
    expect(run.stdout).toMatch(/\n {2}ok {8}redis /);
  });

  describe('server checks on a private redis-server', () => {
    let server: RedisServer;
    let admin: Redis;

    beforeAll(async () => {
      server = await RedisServer.start({ args: ['--maxmemory-policy', 'allkeys-lru'] });
      admin = new Redis(server.url, { maxRetriesPerRequest: 1 });
    });

    afterAll(async () => {
      admin?.disconnect();
      await server?.destroy();
    });

    async function usedMemory(): Promise<number> {
      const info = await admin.info('memory');
      return Number(/used_memory:(\d+)/.exec(info)?.[1]);
    }

    it('allkeys-lru is a warning; memory above 80 % / 95 % of maxmemory is warning / critical', async () => {
      const prefix = freshPrefix();
      await admin.config('SET', 'maxmemory', String(Math.round((await usedMemory()) * 1.15)));
      let run = await inProcess<HealthResult>(Health, ['--json'], { prefix, url: server.url });
      let report = JSON.parse(run.stdout) as HealthResult;
      expect(check(report, 'eviction_policy')).toMatchObject({ status: 'warning', value: 'allkeys-lru' });
      expect(check(report, 'eviction_policy').message).toMatch(/set maxmemory-policy noeviction/);
      expect(check(report, 'memory').status).toBe('warning');
      expect(check(report, 'memory').message).toMatch(
        / used of maxmemory [\d.]+ MB \((8\d|9[0-5])(\.\d)?%\)/,
      );
      expect(run.exit).toBe(5);

      await admin.config('SET', 'maxmemory', String(Math.round((await usedMemory()) * 1.02)));
      run = await inProcess<HealthResult>(Health, ['--json'], { prefix, url: server.url });
      report = JSON.parse(run.stdout) as HealthResult;
      expect(check(report, 'memory').status).toBe('critical');
      expect(check(report, 'memory').message).not.toMatch(/allkeys/);
      expect(run.exit).toBe(6);
      await admin.config('SET', 'maxmemory', '0');
    });
  });

  describe('built CLI', () => {
    it('--json on unreachable Redis: a document with status "unreachable", exit 4', async () => {
      const result = await cli(['health', '--json', '--redis-url', 'redis://127.0.0.1:1']);
      expect(result.code).toBe(4);
      const report = JSON.parse(result.stdout) as HealthResult & { error: unknown };
      expect(report).toMatchObject({
        status: 'unreachable',
        exit_code: 4,
        checks: [{ name: 'redis', status: 'critical', message: expect.stringMatching(/cannot reach Redis/) }],
        error: { code: 'REDIS_UNAVAILABLE', exitCode: 4 },
      });
      expect(oneErrorLine(result)).toMatch(/cannot reach Redis at redis:\/\/127\.0\.0\.1:1/);
    });

    it('refused credentials: status "unreachable", exit 4, the password printed nowhere', async () => {
      const auth = await RedisServer.start({ args: ['--requirepass', 'right-pw'] });
      try {
        for (const args of [['--json'], []]) {
          const result = await cli(['health', ...args], {
            REDIS_URL: `redis://:hunter2-wrong@127.0.0.1:${auth.port}`,
          });
          expect(result.code).toBe(4);
          expect(result.stdout + result.stderr).not.toContain('hunter2-wrong');
          oneErrorLine(result);
          if (args.length > 0) {
            expect(JSON.parse(result.stdout)).toMatchObject({
              status: 'unreachable',
              error: { code: 'REDIS_AUTH' },
            });
          } else {
            expect(result.stdout).toBe('');
          }
        }
      } finally {
        await auth.destroy();
      }
    });

    it('exit 0 / 5 / 6 with one JSON document each', async () => {
      const prefix = freshPrefix();
      const ok = await cli(['health', '--json', '--prefix', prefix]);
      expect([ok.code, JSON.parse(ok.stdout).status, ok.stderr]).toEqual([0, 'ok', '']);
      await fill(`${prefix}queue:dead`, 50, 'd');
      const warn = await cli(['health', '--json', '--prefix', prefix]);
      expect([warn.code, JSON.parse(warn.stdout).status, warn.stderr]).toEqual([5, 'warning', '']);
      const crit = await cli(['health', '--json', '--max-dlq', '20', '--prefix', prefix]);
      expect([crit.code, JSON.parse(crit.stdout).status, crit.stderr]).toEqual([6, 'critical', '']);
    });

    const bad: Array<[string, string[], RegExp]> = [
      [
        '--max-error-rate 150',
        ['--max-error-rate', '150'],
        /--max-error-rate must be a percentage from 0 to 100/,
      ],
      ['--max-error-rate abc', ['--max-error-rate', 'abc'], /--max-error-rate must be a percentage/],
      ['--max-depth -1', ['--max-depth', '-1'], /--max-depth/],
      ['--max-dlq 1.5', ['--max-dlq', '1.5'], /--max-dlq must be a whole number/],
      ['--window 30s', ['--window', '30s'], /--window must be whole minutes/],
      ['--max-processing-age 0', ['--max-processing-age', '0'], /--max-processing-age must be more than 0/],
      ['--max-processing-age soon', ['--max-processing-age', 'soon'], /invalid --max-processing-age "soon"/],
    ];
    it.for(bad)('%s: exit 2, one line, even with Redis unreachable', async ([, args, message]) => {
      const run = await inProcess(Health, args, { url: 'redis://127.0.0.1:1' });
      expect(run.exit).toBe(2);
      expect(run.stdout).toBe('');
      expect(oneErrorLine(run)).toMatch(message);
    });

    it('a bad flag on the built CLI: exit 2, one line, nothing on stdout', async () => {
      const result = await cli(['health', '--max-error-rate', '150', '--redis-url', 'redis://127.0.0.1:1']);
      expect([result.code, result.stdout]).toEqual([2, '']);
      expect(oneErrorLine(result)).toMatch(/--max-error-rate must be a percentage from 0 to 100/);
    });
  });
});

// ---------------------------------------------------------------------------------------------------
// doctor

describe('doctor', () => {
  let server: RedisServer;
  let admin: Redis;

  beforeAll(async () => {
    // As the runbook left it: allkeys-lru, no AOF, a KEYS in the slowlog.
    server = await RedisServer.start({
      args: ['--maxmemory-policy', 'allkeys-lru', '--slowlog-log-slower-than', '0'],
    });
    admin = new Redis(server.url, { maxRetriesPerRequest: 1 });
  });

  afterAll(async () => {
    admin?.disconnect();
    await server?.destroy();
  });

  it('reports the runbook hazards with the right advice, and never recommends allkeys-lru', async () => {
    const prefix = freshPrefix();
    await seedVectors(admin, loadVectors('go-original'), prefix);
    await admin.call('KEYS', `${prefix}job:*`);
    await admin.config('SET', 'slowlog-log-slower-than', '10000');
    const before = await snapshot(admin, prefix);
    const run = await inProcess<DoctorResult>(Doctor, ['--json'], { prefix, url: server.url });
    expect(run.exit).toBe(5);
    const report = JSON.parse(run.stdout) as DoctorResult;
    expect(report).toMatchObject({ status: 'warning', exit_code: 5, prefix });
    const find = (name: string) => report.findings.find((f) => f.name === name);
    expect(find('maxmemory_policy')).toMatchObject({
      section: 'eviction',
      status: 'warning',
      value: 'allkeys-lru',
    });
    expect(find('maxmemory_policy')?.advice).toMatch(/CONFIG SET maxmemory-policy noeviction/);
    expect(find('aof')).toMatchObject({ section: 'persistence', status: 'warning', value: 'off' });
    expect(find('aof')?.advice).toMatch(/appendonly yes with appendfsync everysec/);
    expect(find('keys_command')).toMatchObject({ section: 'slowlog', status: 'warning', value: 1 });
    expect(find('bananas_keys')?.advice).toMatch(/do not delete job keys/);
    for (const f of report.findings) {
      expect(f.advice ?? '').not.toMatch(/set maxmemory-policy allkeys|--scan.*DEL|xargs redis-cli DEL/i);
    }
    expect(report.memory).toMatchObject({ maxmemory_policy: 'allkeys-lru', maxmemory_bytes: 0 });
    expect(report.memory.used_bytes).toBeGreaterThan(0);
    expect(report.clients.maxclients).toBeGreaterThan(0);
    expect(report.persistence).toMatchObject({ aof_enabled: false, rdb_last_bgsave_status: 'ok' });
    expect(report.slowlog.latest.some((e) => e.command.startsWith(`KEYS ${prefix}job:*`))).toBe(true);
    expect(report.slowlog.slower_than_us).toBe(10000);

    // Key counts by kind (the Go vectors: 12 documents incl. the cron job's "job:", 2 results, …).
    expect(Object.fromEntries(report.keys.categories.map((c) => [c.name, c.count]))).toEqual({
      jobs: 12,
      results: 2,
      ready_lists: 3,
      queues: 3,
      schedules: 1,
      schedule_locks: 1,
    });
    expect(report.keys.scanned).toBe(22);
    for (const c of report.keys.categories) {
      expect([c.sampled, c.estimated], c.name).toEqual([c.count, false]);
      expect(c.memory_bytes, c.name).toBeGreaterThan(0);
    }
    expect(report.keys.memory_note).toBe('measured: MEMORY USAGE on every key');
    expect(await snapshot(admin, prefix)).toEqual(before);
  });

  it('extrapolates memory from a bounded sample and says so', async () => {
    const prefix = freshPrefix();
    const pipeline = admin.pipeline();
    for (let i = 0; i < 500; i++) pipeline.set(`${prefix}job:${i}`, jobDocument(String(i)));
    await pipeline.exec();
    const run = await inProcess<DoctorResult>(Doctor, ['--json', '--sample', '20'], {
      prefix,
      url: server.url,
    });
    const report = JSON.parse(run.stdout) as DoctorResult;
    const jobs = report.keys.categories.find((c) => c.name === 'jobs');
    expect(jobs).toMatchObject({ count: 500, sampled: 20, estimated: true });
    const one = Number(await admin.call('MEMORY', 'USAGE', `${prefix}job:1`, 'SAMPLES', '5'));
    expect(jobs?.memory_bytes).toBeGreaterThan(one * 500 * 0.8);
    expect(jobs?.memory_bytes).toBeLessThan(one * 500 * 1.2);
    expect(report.keys.memory_note).toMatch(/^estimated: MEMORY USAGE on up to 20 random keys per category/);
    const human = await inProcess<DoctorResult>(Doctor, ['--sample', '20'], { prefix, url: server.url });
    expect(human.stdout).toMatch(/│ jobs\s+│ 500\s+│ ~[\d.]+ KB\s+│ 20\s+│/);
    expect(human.stdout).toMatch(/→ CONFIG SET maxmemory-policy noeviction/);
  });

  it('noeviction and AOF everysec are ok: exit 0', async () => {
    const good = await RedisServer.start({ args: ['--appendonly', 'yes', '--appendfsync', 'everysec'] });
    try {
      const run = await inProcess<DoctorResult>(Doctor, ['--json'], { prefix: freshPrefix(), url: good.url });
      const report = JSON.parse(run.stdout) as DoctorResult;
      expect(report.findings.filter((f) => f.status !== 'ok')).toEqual([]);
      expect([run.exit, report.status]).toEqual([0, 'ok']);
      expect(report.persistence).toMatchObject({ aof_enabled: true, appendfsync: 'everysec' });
      expect(report.findings.find((f) => f.name === 'aof')).toMatchObject({
        status: 'ok',
        value: 'appendfsync everysec',
      });
    } finally {
      await good.destroy();
    }
  });

  it('categorizes keys only by the names Keys builds', () => {
    const keys = new Keys('bananas:');
    const cases: Array<[string, string]> = [
      ['bananas:job:abc', 'jobs'],
      ['bananas:job:', 'jobs'],
      ['bananas:result:abc', 'results'],
      ['bananas:queue:high', 'ready_lists'],
      ['bananas:route:gpu:queue:low', 'ready_lists'],
      ['bananas:route:default:queue:low', 'ready_lists'],
      ['bananas:route:gpu:queue:urgent', 'other'],
      ['bananas:queue:dead', 'queues'],
      ['bananas:processing:leases', 'leases'],
      ['bananas:workers', 'workers'],
      ['bananas:worker:h:1:abc', 'workers'],
      ['bananas:stats', 'stats'],
      ['bananas:stats:minute:29000000', 'stats'],
      ['bananas:stats:minute:x', 'other'],
      ['bananas:signal', 'signals'],
      ['bananas:route:gpu:signal', 'signals'],
      ['bananas:schedules:daily', 'schedules'],
      ['bananas:schedule_lock:daily', 'schedule_locks'],
      ['bananas:something-new', 'other'],
    ];
    for (const [key, category] of cases) expect(categorize(keys, key), key).toBe(category);
  });

  it('built CLI: --json is one document with the exit code; unreachable Redis exits 4', async () => {
    const result = await cli(['doctor', '--json', '--prefix', freshPrefix()], { REDIS_URL: server.url });
    expect(result.code).toBe(5); // allkeys-lru, no AOF
    expect(result.stderr).toBe('');
    expect(JSON.parse(result.stdout)).toMatchObject({ status: 'warning', exit_code: 5 });
    const down = await cli(['doctor', '--redis-url', 'redis://127.0.0.1:1']);
    expect(down.code).toBe(4);
    expect(oneErrorLine(down)).toMatch(/cannot reach Redis/);
  });
});
