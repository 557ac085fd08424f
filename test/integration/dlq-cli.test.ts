/**
 * The `dlq` commands end to end, as SREs and cron jobs run them: the built CLI as a child process against
 * the test Redis (each test under its own prefix). Checks --json (exactly one document on stdout), exit
 * codes, one-line errors on stderr, that bad input and refused confirmations change nothing, and that
 * SIGINT / SIGKILL in the middle of a requeue leave every job in exactly one place.
 */
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Keys } from '../../src/core/keys.js';
import { cleanEnv, oneErrorLine, runCli, startCli, type SnapshotBuild } from '../helpers/cli.js';
import { freshPrefix, testRedisUrl, waitFor } from '../helpers/context.js';
import { closeTestBed, openTestBed } from '../helpers/in-process.js';
import { auditDeadLetterRequeue, seedDeadJobs } from '../helpers/dead-letters.js';
import { deadJobDocument } from '../helpers/seed.js';
import { snapshot } from '../helpers/snapshot.js';

let build: SnapshotBuild;
let redis: Redis;
let scratch: string;

beforeAll(async () => {
  ({ build, redis, scratch } = await openTestBed({ scratch: 'bananas-dlq-cli-' }));
});

afterAll(() => closeTestBed({ build, redis, scratch }));

function cli(args: string[], env: Record<string, string | undefined> = {}, timeoutMs = 30_000) {
  return runCli(build.bin, args, { env: cleanEnv({ REDIS_URL: testRedisUrl(), ...env }), timeoutMs });
}

function deadDoc(id: string, priority = 'normal'): string {
  return deadJobDocument(id, { payload: { amount: 1999, note: 'x'.repeat(120) }, priority });
}

/** n dead jobs (oldest first), a stub and a corrupt document. Returns the job ids. */
async function seed(prefix: string, n = 3): Promise<string[]> {
  const keys = new Keys(prefix);
  const ids = Array.from({ length: n }, (_, i) => `job-${String(i).padStart(6, '0')}`);
  await seedDeadJobs(redis, keys, ids, (id) => deadDoc(id));
  await redis.set(keys.job('stub'), '{"error":"Job data not found (corrupted reference)","id":"stub"}');
  await redis.set(keys.job('corrupt'), '{"id":"corrupt","name":');
  await redis.lpush(keys.dead, 'stub', 'corrupt');
  return ids;
}

describe('dlq commands: --json prints one document, exit 0', () => {
  it('inspect, requeue --dry-run, requeue, backup, restore, clear', async () => {
    const prefix = freshPrefix();
    const keys = new Keys(prefix);
    await seed(prefix);
    const base = ['--prefix', prefix, '--json'];

    const inspect = await cli(['dlq', 'inspect', ...base]);
    expect(inspect.code).toBe(0);
    expect(inspect.stderr).toBe('');
    const report = JSON.parse(inspect.stdout) as {
      length: number;
      entries: Array<{ id: string; state: string }>;
    };
    expect(report.length).toBe(5);
    expect(report.entries.map((e) => e.state)).toEqual(['corrupt', 'stub', 'job', 'job', 'job']);

    const before = await snapshot(redis, prefix);
    const dry = await cli(['dlq', 'requeue', '--all', '--dry-run', ...base]);
    expect(dry.code).toBe(0);
    expect(JSON.parse(dry.stdout)).toMatchObject({ dry_run: true, requeued: 3, stub: 1, corrupt: 1 });
    expect(await snapshot(redis, prefix)).toEqual(before);

    const requeue = await cli(['dlq', 'requeue', '--id', 'job-000001', '--to', 'high', '--yes', ...base]);
    expect(requeue.code).toBe(0);
    expect(requeue.stderr).toBe('');
    expect(JSON.parse(requeue.stdout)).toMatchObject({ requeued: 1, ids: ['job-000001'] });
    expect(await redis.lrange(keys.queue('high'), 0, -1)).toEqual(['job-000001']);

    const file = join(scratch, `${prefix}backup.jsonl.gz`);
    const backup = await cli(['dlq', 'backup', '--out', file, ...base]);
    expect(backup.code).toBe(0);
    expect(JSON.parse(backup.stdout)).toMatchObject({ file, entries: 4, compressed: true });

    const clear = await cli(['dlq', 'clear', '--no-backup', '--yes', ...base]);
    expect(clear.code).toBe(0);
    expect(JSON.parse(clear.stdout)).toMatchObject({ removed: 4, documents_deleted: 4, backup: null });
    expect(await redis.exists(keys.dead)).toBe(0);

    const restore = await cli(['dlq', 'restore', '--in', file, ...base]);
    expect(restore.code).toBe(0);
    expect(restore.stderr).toBe('');
    expect(JSON.parse(restore.stdout)).toMatchObject({ restored: 4, skipped_existing: 0, invalid: 0 });
    expect(await redis.lrange(keys.dead, 0, -1)).toEqual(['corrupt', 'stub', 'job-000002', 'job-000000']);
  });

  it('human output: tables on stdout, nothing on stderr', async () => {
    const prefix = freshPrefix();
    await seed(prefix);
    const inspect = await cli(['dlq', 'inspect', '--prefix', prefix]);
    expect(inspect.code).toBe(0);
    expect(inspect.stderr).toBe('');
    expect(inspect.stdout).toContain(`${prefix}queue:dead: 5 entries`);
    expect(inspect.stdout).toMatch(/job-000002 +│ charge_card +│ normal +│ 3\/3/);
    expect(inspect.stdout).toContain('(stub)');
    const requeue = await cli(['dlq', 'requeue', '--all', '--yes', '--prefix', prefix]);
    expect(requeue.code).toBe(0);
    expect(requeue.stdout).toContain('Requeued 3 jobs');
    expect(requeue.stdout).toContain('Left in the dead-letter queue: 1 corrupt, 1 stub');
  });
});

describe.concurrent('bad input: the right exit code, one line, nothing changed', () => {
  const existing = () => {
    const path = join(scratch, `exists-${Math.random().toString(16).slice(2)}.jsonl`);
    writeFileSync(path, 'keep me');
    return path;
  };
  const cases: Array<[what: string, args: () => string[], code: number, message: RegExp]> = [
    ['requeue without a selection', () => ['requeue', '--yes'], 2, /say what to requeue/],
    ['requeue --all without --yes (no terminal)', () => ['requeue', '--all'], 2, /refused without --yes/],
    ['requeue --id with a glob', () => ['requeue', '--id', 'job-*', '--yes'], 2, /glob characters/],
    ['requeue --id ""', () => ['requeue', '--id', '', '--yes'], 2, /invalid job id/],
    ['requeue --id of 10 KB', () => ['requeue', '--id', 'x'.repeat(10_240), '--yes'], 2, /invalid job id/],
    [
      'requeue --id with --all',
      () => ['requeue', '--id', 'a', '--all', '--yes'],
      2,
      /--id cannot be combined/,
    ],
    ['requeue --to urgent', () => ['requeue', '--all', '--to', 'urgent', '--yes'], 2, /--to/],
    [
      'requeue --limit 0',
      () => ['requeue', '--all', '--limit', '0', '--yes'],
      2,
      /--limit must be a whole number/,
    ],
    ['requeue --since 10', () => ['requeue', '--since', '10', '--yes'], 2, /--since.*duration/],
    [
      'requeue unknown id',
      () => ['requeue', '--id', 'nope', '--yes'],
      3,
      /not in the dead-letter queue .*nope/,
    ],
    [
      'requeue a corrupt document',
      () => ['requeue', '--id', 'corrupt', '--yes'],
      8,
      /cannot requeue corrupt/,
    ],
    ['requeue a stub', () => ['requeue', '--id', 'stub', '--yes'], 8, /cannot requeue stub/],
    ['inspect --limit 0', () => ['inspect', '--limit', '0'], 2, /--limit/],
    [
      'inspect --limit 20000',
      () => ['inspect', '--limit', '20000'],
      2,
      /--limit must be between 1 and 10000/,
    ],
    ['inspect --offset -1', () => ['inspect', '--offset=-1'], 2, /offset/],
    ['inspect --grep ""', () => ['inspect', '--grep', ''], 2, /--grep needs some text/],
    ['backup without --out', () => ['backup'], 2, /Missing required flag out/],
    ['backup over an existing file', () => ['backup', '--out', existing()], 8, /already exists; .*--force/],
    ['restore a missing file', () => ['restore', '--in', join(scratch, 'nope.jsonl')], 2, /no such file/],
    [
      'restore a file that is not a backup',
      () => ['restore', '--in', existing()],
      2,
      /not a bananas dead-letter backup/,
    ],
    ['clear without --backup', () => ['clear', '--yes'], 2, /without a backup/],
    [
      'clear --backup and --no-backup',
      () => ['clear', '--backup', 'x', '--no-backup', '--yes'],
      2,
      /exclude each other/,
    ],
    [
      'clear without --yes',
      () => ['clear', '--backup', join(scratch, 'never.jsonl')],
      2,
      /refused without --yes/,
    ],
  ];

  it.for(cases)('%s', async ([, args, code, message], { expect }) => {
    const prefix = freshPrefix();
    await seed(prefix);
    const before = await snapshot(redis, prefix);
    const argv = ['dlq', ...args(), '--prefix', prefix];
    const [result, json] = await Promise.all([cli(argv), cli([...argv, '--json'])]);
    expect(result.timedOut).toBe(false);
    expect(result.code).toBe(code);
    expect(result.stdout).toBe('');
    expect(oneErrorLine(result)).toMatch(message);
    expect(json.code).toBe(code);
    oneErrorLine(json);
    expect(JSON.parse(json.stdout)).toMatchObject({ error: { exitCode: code } });
    expect(await snapshot(redis, prefix)).toEqual(before);
    expect(existsSync(join(scratch, 'never.jsonl'))).toBe(false);
  });

  it('Redis unreachable: exit 4 for every command', async ({ expect }) => {
    for (const args of [
      ['inspect'],
      ['requeue', '--all', '--yes'],
      ['backup', '--out', join(scratch, 'x.jsonl')],
    ]) {
      const result = await cli(['dlq', ...args, '--redis-url', 'redis://127.0.0.1:1', '--json']);
      expect(result.code).toBe(4);
      expect(JSON.parse(result.stdout)).toMatchObject({ error: { code: 'REDIS_UNAVAILABLE', exitCode: 4 } });
      expect(oneErrorLine(result)).toMatch(/cannot reach Redis/);
    }
    expect(existsSync(join(scratch, 'x.jsonl'))).toBe(false);
  });

  it('an existing backup file is kept as it was', async ({ expect }) => {
    const prefix = freshPrefix();
    await seed(prefix);
    const path = existing();
    expect((await cli(['dlq', 'backup', '--out', path, '--prefix', prefix])).code).toBe(8);
    expect(readFileSync(path, 'utf8')).toBe('keep me');
    expect((await cli(['dlq', 'backup', '--out', path, '--force', '--prefix', prefix])).code).toBe(0);
    expect(readFileSync(path, 'utf8').split('\n')).toHaveLength(7);
  });
});

/** Every seeded job is in exactly one place, with the document that place implies. */
async function expectEveryJobInOnePlace(
  prefix: string,
  ids: string[],
): Promise<{ dead: number; ready: number }> {
  const audit = await auditDeadLetterRequeue(redis, new Keys(prefix), ids, (id) => deadDoc(id));
  expect(audit).toMatchObject({ lost: [], duplicated: [], mismatched: [] });
  expect(audit.dead + audit.ready).toBe(ids.length);
  return { dead: audit.dead, ready: audit.ready };
}

describe('interrupting a requeue', () => {
  const N = 60_000;

  /** Seeds N dead jobs, runs `dlq requeue --all --yes --json` and sends `signal` after the first batches. */
  async function interruptRequeue(signal: NodeJS.Signals) {
    const prefix = freshPrefix();
    const keys = new Keys(prefix);
    const ids = await seed(prefix, N);
    const run = startCli(build.bin, ['dlq', 'requeue', '--all', '--yes', '--json', '--prefix', prefix], {
      env: cleanEnv({ REDIS_URL: testRedisUrl() }),
      timeoutMs: 60_000,
    });
    await waitFor(async () => (await redis.llen(keys.dead)) < N, 30_000, 'the first batches');
    run.child.kill(signal);
    return { prefix, ids, result: await run.done };
  }

  it('SIGKILL mid-sweep leaves every job in exactly one place', async () => {
    const { prefix, ids, result } = await interruptRequeue('SIGKILL');
    expect(result.signal).toBe('SIGKILL');
    const { ready } = await expectEveryJobInOnePlace(prefix, ids);
    expect(ready).toBeGreaterThan(0);
    expect(ready, 'the sweep should have been killed before the end').toBeLessThan(N);
  }, 60_000);

  it('SIGINT stops after the batch in flight: exit 130, the partial result as JSON, every job in one place', async () => {
    const { prefix, ids, result } = await interruptRequeue('SIGINT');
    expect(result.code).toBe(130);
    const report = JSON.parse(result.stdout) as { interrupted: boolean; requeued: number };
    expect(report.interrupted).toBe(true);
    const { ready } = await expectEveryJobInOnePlace(prefix, ids);
    expect(ready).toBe(report.requeued);
    expect(ready).toBeLessThan(N);
  }, 60_000);
});

describe.concurrent('--help', () => {
  it.for(['inspect', 'requeue', 'backup', 'restore', 'clear'])(
    'dlq %s --help',
    async (command, { expect }) => {
      const result = await cli(['dlq', command, '--help']);
      expect(result.code).toBe(0);
      expect(result.stdout).toContain(`$ bananas dlq ${command}`);
      expect(result.stdout).toContain('EXAMPLES');
    },
  );
});
