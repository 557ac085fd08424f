/**
 * `queue stats`, `queue peek` and `worker list` against the states the runbook describes, seeded as raw
 * keys under a fresh prefix: deep and routed queues, legacy route:default lists, processing entries with
 * live, expired and missing leases, due and later scheduled jobs, a growing dead-letter queue, per-minute
 * counters, live / stale / expired worker heartbeats, corrupt, missing and stub documents. Every command
 * is read-only: each test snapshots the prefix before and after. Main paths run in-process from the
 * sources; exit codes, one-line errors, --json and --watch run on the built CLI.
 */
import { hostname } from 'node:os';
import type { Config } from '@oclif/core';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import QueuePeek from '../../src/commands/queue/peek.js';
import QueueStatsCommand from '../../src/commands/queue/stats.js';
import WorkerListCommand from '../../src/commands/worker/list.js';
import { createLogger } from '../../src/core/logger.js';
import { Keys } from '../../src/core/keys.js';
import { Worker } from '../../src/core/worker.js';
import type { PeekResult, QueueStats } from '../../src/inspector/stats.js';
import { checkHealth } from '../../src/inspector/health.js';
import { collectQueueStats } from '../../src/inspector/stats.js';
import type { WorkerList } from '../../src/inspector/workers.js';
import {
  cleanEnv,
  oneErrorLine,
  runCli,
  startCli,
  type CliResult,
  type SnapshotBuild,
} from '../helpers/cli.js';
import { freshPrefix, testRedisUrl, waitFor } from '../helpers/context.js';
import { closeTestBed, inProcessRunner, openTestBed } from '../helpers/in-process.js';
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

// ---------------------------------------------------------------------------------------------------
// helpers

/** Runs a command class in this process (from the sources), capturing what it writes. */
const inProcess = inProcessRunner(() => config);

function cli(args: string[], env: Record<string, string | undefined> = {}): Promise<CliResult> {
  return runCli(build.bin, args, { env: cleanEnv({ REDIS_URL: testRedisUrl(), ...env }) });
}

/** A job document as the Go service writes it. */
function doc(id: string, fields: Record<string, unknown> = {}): string {
  return jobDocument(id, { payload: { to: 'a@b.c' }, ...fields });
}

/** LPUSHes `count` generated ids (as producers do), in batches. */
async function fill(key: string, count: number, tag = 'j'): Promise<void> {
  for (let start = 0; start < count; start += 10_000) {
    const ids = Array.from({ length: Math.min(10_000, count - start) }, (_, i) => `${tag}${start + i}`);
    await redis.lpush(key, ...ids);
  }
}

/** A worker's heartbeat as src/core/worker.ts writes it (registry score and hash). */
async function heartbeat(
  prefix: string,
  id: string,
  lastSeen: number,
  fields: Record<string, string | number> | null,
): Promise<void> {
  await redis.zadd(`${prefix}workers`, lastSeen, id);
  if (fields === null) return;
  await redis.hset(`${prefix}worker:${id}`, {
    id,
    host: id.split(':')[0] as string,
    pid: Number(id.split(':')[1]),
    concurrency: 10,
    priorities: 'high,normal,low',
    routing_keys: 'default',
    job_types: '',
    started_at: '2026-01-01T00:00:00.000Z',
    last_seen: new Date(lastSeen).toISOString(),
    in_flight: 0,
    processed: 0,
    completed: 0,
    failed: 0,
    retried: 0,
    lease_ms: 30000,
    ...fields,
  });
}

const minuteOf = (ms: number) => Math.floor(ms / 60_000);

// ---------------------------------------------------------------------------------------------------
// queue stats

describe('queue stats', () => {
  /**
   * The runbook's "verify queue integrity" loop, all at once: depths graded green/yellow/red, processing
   * entries with live / expired / no lease, due and later scheduled jobs, DLQ over 10, workers.
   */
  async function seedIncident(prefix: string, now: number): Promise<void> {
    await fill(`${prefix}queue:normal`, 150, 'n');
    await fill(`${prefix}queue:low`, 1001, 'l');
    await redis.lpush(`${prefix}route:gpu:queue:high`, 'g1', 'g2');
    await redis.lpush(`${prefix}route:default:queue:normal`, 'legacy1', 'legacy2', 'legacy3');
    await redis.lpush(`${prefix}route:gpu:queue:urgent`, 'not-a-priority'); // not a ready list
    await redis.lpush(`${prefix}queue:processing`, 'p-live', 'p-expired', 'p-orphan1', 'p-orphan2');
    await redis.zadd(`${prefix}processing:leases`, now + 30_000, 'p-live', now - 5_000, 'p-expired');
    await redis.hset(`${prefix}processing:owners`, 'p-live', 'h:1:aa', 'p-expired', 'h:2:bb');
    await redis.zadd(
      `${prefix}queue:scheduled`,
      String((now - 10_000) / 1000),
      'due1',
      String(Math.floor(now / 1000) - 1),
      'due2',
      String(now / 1000 + 3600.25),
      'later1',
    );
    await fill(`${prefix}queue:dead`, 11, 'd');
    // Error rate: 5 failed / (95 completed + 5 failed) = 5 % over 5 minutes; retried attempts don't count.
    const minute = minuteOf(now);
    await redis.hset(`${prefix}stats:minute:${minute}`, { completed: 60, failed: 2, retried: 40 });
    await redis.hset(`${prefix}stats:minute:${minute - 1}`, { completed: 35, failed: 3, released: 1 });
    await redis.hset(`${prefix}stats:minute:${minute - 5}`, { completed: 1, failed: 1000 }); // outside
    await redis.hset(`${prefix}stats`, { completed: 1000, failed: 50, retried: 300, released: 2 });
    await heartbeat(prefix, 'web1:100:aaaaaa', now - 1000, { in_flight: 3 });
    await heartbeat(prefix, 'web2:200:bbbbbb', now - 2000, { in_flight: 9, routing_keys: 'default,gpu' });
    await heartbeat(prefix, 'web3:300:cccccc', now - 60_000, { in_flight: 10 }); // stale: 60 s old
    await heartbeat(prefix, 'web4:400:dddddd', now - 20_000, null); // hash expired
  }

  it('reports every figure of a seeded incident, graded by the runbook, and changes nothing', async () => {
    const prefix = freshPrefix();
    await seedIncident(prefix, Date.now());
    const before = await snapshot(redis, prefix);

    const run = await inProcess<QueueStats>(QueueStatsCommand, ['--json'], { prefix });
    expect(run.exit).toBe(0);
    expect(run.stderr).toBe('');
    const stats = run.result as QueueStats;
    expect(JSON.parse(run.stdout)).toEqual(stats);

    expect(stats.ready.queues.map((q) => [q.name, q.key, q.depth, q.level])).toEqual([
      ['high', `${prefix}queue:high`, 0, 'ok'],
      ['normal', `${prefix}queue:normal`, 150, 'warning'],
      ['low', `${prefix}queue:low`, 1001, 'critical'],
      ['default:normal (legacy)', `${prefix}route:default:queue:normal`, 3, 'ok'],
      ['gpu:high', `${prefix}route:gpu:queue:high`, 2, 'ok'],
    ]);
    expect(stats.ready.total).toBe(150 + 1001 + 3 + 2);
    expect(stats.ready.level).toBe('critical');
    expect(stats.processing).toEqual({
      key: `${prefix}queue:processing`,
      total: 4,
      leased: 2,
      lease_expired: 1,
      no_lease: 2,
    });
    expect(stats.scheduled).toEqual({ key: `${prefix}queue:scheduled`, total: 3, due: 2, later: 1 });
    expect(stats.dead_letter).toEqual({ key: `${prefix}queue:dead`, depth: 11, level: 'warning' });
    expect(stats.workers).toEqual({
      live: 2,
      stale: 2,
      concurrency: 20,
      in_flight: 12,
      utilization_percent: 60,
      level: 'ok',
    });
    expect(stats.error_rate).toEqual({
      window_minutes: 5,
      completed: 95,
      failed: 5,
      retried: 40,
      released: 1,
      rate_percent: 5,
      level: 'warning',
    });
    expect(stats.lifetime).toEqual({ completed: 1000, failed: 50, retried: 300, released: 2 });
    expect(stats.problems).toEqual([]);
    expect(await snapshot(redis, prefix)).toEqual(before);
  });

  it('human output: a table of queues and one line per figure', async () => {
    const prefix = freshPrefix();
    await seedIncident(prefix, Date.now());
    const run = await inProcess<QueueStats>(QueueStatsCommand, [], { prefix });
    expect(run.exit).toBe(0);
    expect(run.stdout).toMatch(/│ low\s+│ \S+queue:low\s+│ 1,001\s+│/);
    expect(run.stdout).toMatch(/│ gpu:high\s+│/);
    expect(run.stdout).toMatch(/Processing\s+4 \(1 past their lease, 2 without a lease\)/);
    expect(run.stdout).toMatch(/Scheduled\s+3 \(2 due now, 1 later\)/);
    expect(run.stdout).toMatch(/Dead letter\s+11/);
    expect(run.stdout).toMatch(/Workers\s+2 live, 2 stale; utilization 60% \(12 of 20 slots busy\)/);
    expect(run.stdout).toMatch(/Error rate\s+5% over 5 min \(5 failed, 95 completed, 40 retried attempts\)/);
  });

  it('error rate: retried attempts are not failures; the window selects the minute buckets', async () => {
    const prefix = freshPrefix();
    const keys = new Keys(prefix);
    const now = Date.parse('2030-01-02T03:04:30Z');
    const minute = minuteOf(now);
    await redis.hset(`${prefix}stats:minute:${minute}`, { completed: 0, retried: 500 });
    let stats = await collectQueueStats(redis, keys, { now });
    expect(stats.error_rate).toMatchObject({ retried: 500, failed: 0, rate_percent: null, level: null });

    await redis.hset(`${prefix}stats:minute:${minute - 2}`, { completed: 98, failed: 2 });
    await redis.hset(`${prefix}stats:minute:${minute - 10}`, { completed: 0, failed: 50 });
    stats = await collectQueueStats(redis, keys, { now });
    expect(stats.error_rate).toMatchObject({ completed: 98, failed: 2, rate_percent: 2, level: 'warning' });
    stats = await collectQueueStats(redis, keys, { now, windowMinutes: 1 });
    expect(stats.error_rate).toMatchObject({ completed: 0, failed: 0, rate_percent: null });
    stats = await collectQueueStats(redis, keys, { now, windowMinutes: 15 });
    expect(stats.error_rate).toMatchObject({
      completed: 98,
      failed: 52,
      rate_percent: 34.67,
      level: 'critical',
    });
  });

  it('a queue key of the wrong type is reported as a problem (and a health warning), not a crash', async () => {
    const prefix = freshPrefix();
    await redis.set(`${prefix}queue:high`, 'not a list');
    await redis.lpush(`${prefix}queue:low`, 'l1');
    const stats = await collectQueueStats(redis, new Keys(prefix));
    expect(stats.problems).toEqual([
      `${prefix}queue:high: WRONGTYPE Operation against a key holding the wrong kind of value`,
    ]);
    expect(stats.ready.queues.map((q) => [q.name, q.depth])).toEqual([
      ['high', 0],
      ['normal', 0],
      ['low', 1],
    ]);
    const report = await checkHealth(redis, new Keys(prefix));
    expect(report.checks.find((c) => c.name === 'keys')).toMatchObject({ status: 'warning', value: 1 });
    const human = await inProcess<QueueStats>(QueueStatsCommand, [], { prefix });
    expect(human.stdout).toMatch(/! \S+queue:high: WRONGTYPE/);
  });

  it('counts a million queued ids with LLEN, without loading the list', async () => {
    const prefix = freshPrefix();
    try {
      await fill(`${prefix}queue:normal`, 1_000_000, 'm');
      const started = Date.now();
      const stats = await collectQueueStats(redis, new Keys(prefix));
      expect(Date.now() - started).toBeLessThan(1000);
      expect(stats.ready.queues.find((q) => q.name === 'normal')?.depth).toBe(1_000_000);
      const peek = await inProcess<PeekResult>(QueuePeek, ['normal', '--limit', '2', '--json'], { prefix });
      expect(peek.result?.jobs.map((j) => j.id)).toEqual(['m0', 'm1']);
      expect(peek.result?.length).toBe(1_000_000);
    } finally {
      await redis.unlink(`${prefix}queue:normal`);
    }
  });

  it('--json on the built CLI: one JSON document for the original Go service state, exit 0', async () => {
    const prefix = freshPrefix();
    await seedVectors(redis, loadVectors('go-original'), prefix);
    const before = await snapshot(redis, prefix);
    const result = await cli(['queue', 'stats', '--json', '--prefix', prefix]);
    expect(result.code).toBe(0);
    expect(result.stderr).toBe('');
    const stats = JSON.parse(result.stdout) as QueueStats;
    expect(stats.ready.queues.map((q) => [q.name, q.depth])).toEqual([
      ['high', 0],
      ['normal', 2],
      ['low', 1],
      ['gpu:high', 1],
    ]);
    expect(stats.processing).toMatchObject({ total: 1, leased: 0, no_lease: 1 });
    expect(stats.scheduled).toMatchObject({ total: 1, due: 1, later: 0 });
    expect(stats.dead_letter).toMatchObject({ depth: 4, level: 'ok' });
    expect(stats.workers).toMatchObject({ live: 0, utilization_percent: null, level: null });
    expect(await snapshot(redis, prefix)).toEqual(before);
  });

  describe('bad flags exit 2 with one line, before touching Redis', () => {
    const cases: Array<[string, string[], RegExp]> = [
      ['--window not whole minutes', ['--window', '90s'], /--window must be whole minutes from 1m to 2h/],
      ['--window over 2h', ['--window', '3h'], /--window must be whole minutes/],
      ['--watch too short', ['--watch', '100ms'], /--watch must be at least 500ms/],
      ['--watch not a duration', ['--watch', 'often'], /invalid --watch "often"/],
      ['--prefix with a glob', ['--prefix', 'bananas*:'], /invalid prefix "bananas\*:"/],
      ['an argument', ['normal'], /Unexpected argument: normal/],
    ];
    it.for(cases)('%s', async ([, args, message]) => {
      const run = await inProcess(QueueStatsCommand, args, { url: 'redis://127.0.0.1:1' });
      expect(run.exit).toBe(2);
      expect(run.stdout).toBe('');
      expect(oneErrorLine(run)).toMatch(message);
    });

    it('built CLI: exit 2 and one line; --watch with --json is one JSON error; unreachable Redis exits 4', async () => {
      const bad = await cli(['queue', 'stats', '--window', '90s'], { REDIS_URL: 'redis://127.0.0.1:1' });
      expect([bad.code, bad.stdout]).toEqual([2, '']);
      expect(oneErrorLine(bad)).toMatch(/--window must be whole minutes/);

      const watchJson = await cli(['queue', 'stats', '--watch', '2s', '--json', '--prefix', freshPrefix()]);
      expect(watchJson.code).toBe(2);
      expect(JSON.parse(watchJson.stdout)).toEqual({
        error: expect.objectContaining({ code: 'USAGE', exitCode: 2 }),
      });
      expect(oneErrorLine(watchJson)).toMatch(/--watch cannot be combined with --json/);

      const down = await cli(['queue', 'stats', '--redis-url', 'redis://127.0.0.1:1']);
      expect(down.code).toBe(4);
      expect(oneErrorLine(down)).toMatch(/cannot reach Redis/);
    });
  });

  it('--watch redraws until SIGINT, then exits 0 having changed nothing', async () => {
    const prefix = freshPrefix();
    await redis.lpush(`${prefix}queue:high`, 'w1');
    const before = await snapshot(redis, prefix);
    const proc = startCli(build.bin, ['queue', 'stats', '--watch', '500ms', '--prefix', prefix], {
      env: cleanEnv({ REDIS_URL: testRedisUrl() }),
    });
    let out = '';
    proc.child.stdout?.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
    await waitFor(() => (out.match(/Ready queue/g) ?? []).length >= 1, 10_000, 'first frame');
    await redis.lpush(`${prefix}queue:high`, 'w2');
    await waitFor(() => /│ high\s+│[^│]+│ 2\s+│/.test(out), 10_000, 'a frame with the new depth');
    proc.child.kill('SIGINT');
    const result = await proc.done;
    expect(result.timedOut).toBe(false);
    expect(result.code).toBe(0);
    expect(result.stderr).toBe('');
    expect(out).toMatch(/every 500ms .* Ctrl-C to stop/);
    // The only change is the test's own LPUSH.
    expect(await snapshot(redis, prefix)).toEqual({
      ...before,
      [`${prefix}queue:high`]: { type: 'list', value: ['w2', 'w1'], ttl: -1 },
    });
  });
});

// ---------------------------------------------------------------------------------------------------
// queue peek

describe('queue peek', () => {
  it('lists the next jobs out first and marks corrupt, missing and stub documents', async () => {
    const prefix = freshPrefix();
    // Producers LPUSH: j1 is the oldest, at the right end, and goes out first.
    await redis.lpush(`${prefix}queue:normal`, 'j1', 'j2', 'j3', 'j4', 'j5');
    await redis.set(`${prefix}job:j1`, doc('j1', { attempts: 1, priority: 'urgent' }));
    await redis.set(`${prefix}job:j2`, '{"id":"j2","name":"x","payload":{oops}');
    await redis.set(`${prefix}job:j4`, '{"error":"Job data not found (corrupted reference)","id":"j4"}');
    await redis.set(`${prefix}job:j5`, doc('other-id'));
    const before = await snapshot(redis, prefix);

    const run = await inProcess<PeekResult>(QueuePeek, ['normal', '--limit', '5', '--json'], { prefix });
    expect(run.exit).toBe(0);
    expect(JSON.parse(run.stdout)).toEqual(run.result);
    const peek = run.result as PeekResult;
    expect(peek).toMatchObject({
      queue: 'normal',
      key: `${prefix}queue:normal`,
      kind: 'ready',
      length: 5,
      limit: 5,
    });
    expect(peek.jobs.map((j) => [j.position, j.id, j.document])).toEqual([
      [0, 'j1', 'ok'],
      [1, 'j2', 'corrupt'],
      [2, 'j3', 'missing'],
      [3, 'j4', 'stub'],
      [4, 'j5', 'ok'],
    ]);
    expect(peek.jobs[0]).toEqual({
      position: 0,
      id: 'j1',
      document: 'ok',
      problem: null,
      name: 'send_email',
      priority: 'normal', // unknown priorities read as normal
      status: 'pending',
      attempts: 1,
      max_retries: 3,
      created_at: '2025-11-10T04:16:35.123Z',
      routing_key: 'default',
    });
    expect(peek.jobs[1]?.problem).toMatch(/invalid JSON/);
    expect(peek.jobs[2]?.problem).toMatch(/Job data not found/);
    expect(peek.jobs[3]?.problem).toMatch(/stub written by the original worker/);
    expect(peek.jobs[4]?.problem).toBe(`the document's id is "other-id"`);

    const human = await inProcess<PeekResult>(QueuePeek, ['normal', '--limit', '2'], { prefix });
    expect(human.stdout).toMatch(/normal \(\S+queue:normal\): 5 entries; the next 2, next out first/);
    expect(human.stdout).toMatch(/│ 1 │ j2 │ -.*corrupt: invalid JSON/);
    expect(await snapshot(redis, prefix)).toEqual(before);
  });

  it('processing shows each lease (live, expired, none) and its owner', async () => {
    const prefix = freshPrefix();
    const now = Date.now();
    await redis.lpush(`${prefix}queue:processing`, 'a', 'b', 'c');
    await redis.zadd(`${prefix}processing:leases`, now + 60_000, 'a', now - 60_000, 'b');
    await redis.hset(`${prefix}processing:owners`, 'a', 'h:1:aa', 'b', 'h:2:bb');
    for (const id of ['a', 'b', 'c']) await redis.set(`${prefix}job:${id}`, doc(id));
    const run = await inProcess<PeekResult>(QueuePeek, ['processing', '--json'], { prefix });
    expect(run.result?.jobs.map((j) => [j.id, j.lease_expires_at, j.lease_owner])).toEqual([
      ['a', new Date(now + 60_000).toISOString(), 'h:1:aa'],
      ['b', new Date(now - 60_000).toISOString(), 'h:2:bb'],
      ['c', null, null],
    ]);
  });

  it('scheduled lists the next due first with its run time (integer and fractional scores)', async () => {
    const prefix = freshPrefix();
    await seedVectors(redis, loadVectors('python-sdk'), prefix);
    const run = await inProcess<PeekResult>(QueuePeek, ['scheduled', '--limit', '2', '--json'], { prefix });
    const peek = run.result as PeekResult;
    expect(peek.length).toBe(4);
    expect(peek.jobs.map((j) => [j.id, j.run_at, j.name])).toEqual([
      ['c2bc5469-0559-4e91-b7ef-397ece8cfa07', '2030-01-02T03:04:05.000Z', 'reminder'],
      ['b182dcd5-5f25-4d82-aaee-ccc872cd9847', '2030-01-02T03:04:05.250Z', 'reminder'],
    ]);
  });

  it('accepts every way of naming a queue; an empty queue is an empty list', async () => {
    const prefix = freshPrefix();
    await seedVectors(redis, loadVectors('go-original'), prefix);
    await redis.lpush(`${prefix}route:default:queue:low`, 'legacy-1');
    const names: Array<[string, string, number]> = [
      ['normal', `${prefix}queue:normal`, 2],
      ['default:normal', `${prefix}queue:normal`, 2],
      [`${prefix}queue:normal`, `${prefix}queue:normal`, 2],
      ['gpu:high', `${prefix}route:gpu:queue:high`, 1],
      [`${prefix}route:gpu:queue:high`, `${prefix}route:gpu:queue:high`, 1],
      [`${prefix}route:default:queue:low`, `${prefix}route:default:queue:low`, 1],
      ['dead', `${prefix}queue:dead`, 4],
      ['dlq', `${prefix}queue:dead`, 4],
      ['processing', `${prefix}queue:processing`, 1],
      ['scheduled', `${prefix}queue:scheduled`, 1],
      ['high', `${prefix}queue:high`, 0],
      ['nobody-uses-this:low', `${prefix}route:nobody-uses-this:queue:low`, 0],
    ];
    for (const [name, key, length] of names) {
      const run = await inProcess<PeekResult>(QueuePeek, [name, '--json'], { prefix });
      expect(run.exit, name).toBe(0);
      expect([run.result?.key, run.result?.length, run.result?.jobs.length], name).toEqual([
        key,
        length,
        length,
      ]);
    }
    // The cron job the original scheduler enqueued with an empty id is shown, not skipped.
    const normal = await inProcess<PeekResult>(QueuePeek, ['normal', '--json'], { prefix });
    expect(normal.result?.jobs.map((j) => [j.id, j.name, j.document])).toEqual([
      ['0b6f1a52-3c1e-4d8a-9f2e-6a7d5c4b3e21', 'send_email', 'ok'],
      ['', 'daily_report', 'ok'],
    ]);
    const dead = await inProcess<PeekResult>(QueuePeek, ['dead', '--json'], { prefix });
    expect(dead.result?.jobs.map((j) => j.document)).toEqual(['ok', 'stub', 'stub', 'stub']);
  });

  describe('an unknown queue or a bad limit exits 2 with one line and changes nothing', () => {
    const cases: Array<[string, string[]]> = [
      ['unknown name', ['urgent']],
      ['unknown priority', ['gpu:urgent']],
      ['bad routing key', ['a b:high']],
      ['glob *', ['*']],
      ['glob in a name', ['high*']],
      ['glob []', ['[high]']],
      ['glob ?', ['hig?']],
      ['empty', ['']],
      ['10 KB', ['q'.repeat(10_240)]],
      ['a newline', ['high\nnormal']],
      ['another prefix', ['other-prefix:queue:high']],
      ['a job key', ['bananas:job:abc']],
      ['no queue', []],
      ['--limit 0', ['normal', '--limit', '0']],
      ['--limit 1001', ['normal', '--limit', '1001']],
      ['--limit abc', ['normal', '--limit', 'abc']],
    ];
    it.for(cases)('%s', async ([, args]) => {
      const prefix = freshPrefix();
      await redis.lpush(`${prefix}queue:normal`, 'x');
      const before = await snapshot(redis, prefix);
      const run = await inProcess(QueuePeek, args, { prefix });
      expect(run.exit).toBe(2);
      expect(run.stdout).toBe('');
      expect(oneErrorLine(run).length).toBeLessThan(400);
      expect(await snapshot(redis, prefix)).toEqual(before);
    });

    it('a queue key holding another type is refused (exit 2), not misread', async () => {
      const prefix = freshPrefix();
      await redis.set(`${prefix}queue:high`, 'oops');
      const run = await inProcess(QueuePeek, ['high'], { prefix });
      expect(run.exit).toBe(2);
      expect(oneErrorLine(run)).toBe(
        `${prefix}queue:high holds a string, not a list of job ids; it is not a queue`,
      );
    });

    it('built CLI: a 10 KB name is one short line (exit 2); --json errors and results are one document', async () => {
      const prefix = freshPrefix();
      await redis.lpush(`${prefix}queue:low`, 'x1');
      const long = await cli(['queue', 'peek', 'q'.repeat(10_240), '--prefix', prefix]);
      expect([long.code, long.stdout]).toEqual([2, '']);
      expect(oneErrorLine(long)).toMatch(/^unknown queue "q{80}…": use high/);

      const unknown = await cli(['queue', 'peek', 'urgent', '--json', '--prefix', prefix]);
      expect(unknown.code).toBe(2);
      expect(JSON.parse(unknown.stdout)).toEqual({
        error: {
          code: 'USAGE',
          exitCode: 2,
          message: expect.stringMatching(/^unknown queue "urgent": use high/),
        },
      });

      const ok = await cli(['queue', 'peek', 'low', '--json', '--prefix', prefix]);
      expect(ok.code).toBe(0);
      expect(ok.stderr).toBe('');
      expect(JSON.parse(ok.stdout)).toMatchObject({
        length: 1,
        jobs: [{ id: 'x1', document: 'missing' }],
      });
    });
  });
});

// ---------------------------------------------------------------------------------------------------
// worker list

describe('worker list', () => {
  it('lists live workers first with their heartbeat fields; stale and expired ones are marked', async () => {
    const prefix = freshPrefix();
    const now = Date.now();
    await heartbeat(prefix, 'b-host:20:aaaaaa', now - 2000, {
      concurrency: 8,
      in_flight: 5,
      processed: 1234,
      completed: 1200,
      failed: 4,
      retried: 30,
      priorities: 'high,normal',
      routing_keys: 'default,gpu',
      job_types: 'send_email,resize',
    });
    await heartbeat(prefix, 'a-host:10:bbbbbb', now - 40_000, {}); // stale: 40 s without a heartbeat
    await heartbeat(prefix, 'c-host:30:cccccc', now - 20_000, null); // hash expired, entry left
    const before = await snapshot(redis, prefix);

    const run = await inProcess<WorkerList>(WorkerListCommand, ['--json'], { prefix });
    expect(run.exit).toBe(0);
    const list = run.result as WorkerList;
    expect(JSON.parse(run.stdout)).toEqual(list);
    expect([list.live, list.stale, list.stale_after_ms]).toEqual([1, 2, 15_000]);
    expect(list.workers.map((w) => [w.id, w.state])).toEqual([
      ['b-host:20:aaaaaa', 'live'],
      ['a-host:10:bbbbbb', 'stale'],
      ['c-host:30:cccccc', 'stale'],
    ]);
    expect(list.workers[0]).toMatchObject({
      stale_reason: null,
      heartbeat_hash: true,
      host: 'b-host',
      pid: 20,
      priorities: ['high', 'normal'],
      routing_keys: ['default', 'gpu'],
      job_types: ['send_email', 'resize'],
      concurrency: 8,
      in_flight: 5,
      processed: 1234,
      completed: 1200,
      failed: 4,
      retried: 30,
      lease_ms: 30000,
      started_at: '2026-01-01T00:00:00.000Z',
      last_seen: new Date(now - 2000).toISOString(),
    });
    expect(list.workers[1]).toMatchObject({
      job_types: null,
      stale_reason: expect.stringMatching(/^last heartbeat 4\ds ago$/),
    });
    expect(list.workers[2]).toMatchObject({
      heartbeat_hash: false,
      host: 'c-host',
      pid: 30,
      concurrency: null,
      priorities: [],
      stale_reason: expect.stringMatching(/^heartbeat hash expired/),
    });

    const live = await inProcess<WorkerList>(WorkerListCommand, ['--live', '--json'], { prefix });
    expect(live.result?.workers.map((w) => w.id)).toEqual(['b-host:20:aaaaaa']);
    const human = await inProcess<WorkerList>(WorkerListCommand, [], { prefix });
    expect(human.stdout).toMatch(
      /b-host:20:aaaaaa │ live\s+│ b-host │ 20\s+│ high,normal @ default,gpu \[send_email,resize\] │ 5\/8/,
    );
    expect(human.stdout).toMatch(/c-host:30:cccccc │ stale .*\(hash expired\)/);
    expect(human.stdout).toMatch(/1 live, 2 stale/);
    expect(await snapshot(redis, prefix)).toEqual(before);
  });

  it('shows a real running worker, and no longer once it has stopped', async () => {
    const prefix = freshPrefix();
    const worker = new Worker({
      handlers: {},
      redisUrl: testRedisUrl(),
      prefix,
      concurrency: 7,
      routingKeys: ['default', 'gpu'],
      logger: createLogger({ level: 'silent' }),
    });
    try {
      await worker.start();
      const run = await inProcess<WorkerList>(WorkerListCommand, ['--json'], { prefix });
      expect(run.result?.workers).toEqual([
        expect.objectContaining({
          id: worker.id,
          state: 'live',
          host: hostname(),
          pid: process.pid,
          concurrency: 7,
          in_flight: 0,
          priorities: ['high', 'normal', 'low'],
          routing_keys: ['default', 'gpu'],
          job_types: null,
        }),
      ]);
    } finally {
      await worker.stop();
    }
    const after = await inProcess<WorkerList>(WorkerListCommand, ['--json'], { prefix });
    expect(after.result).toMatchObject({ live: 0, stale: 0, workers: [] });
  });

  it('built CLI: --json exits 0 with one document; unreachable Redis exits 4', async () => {
    const prefix = freshPrefix();
    await heartbeat(prefix, 'h:1:abcdef', Date.now(), {});
    const ok = await cli(['worker', 'list', '--json', '--prefix', prefix]);
    expect(ok.code).toBe(0);
    expect(ok.stderr).toBe('');
    expect(JSON.parse(ok.stdout)).toMatchObject({ live: 1, workers: [{ id: 'h:1:abcdef', state: 'live' }] });
    const down = await cli(['worker', 'list', '--json', '--redis-url', 'redis://127.0.0.1:1']);
    expect(down.code).toBe(4);
    expect(JSON.parse(down.stdout)).toMatchObject({ error: { code: 'REDIS_UNAVAILABLE', exitCode: 4 } });
  });
});
