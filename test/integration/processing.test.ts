/**
 * `processing list` and `processing recover` against a real redis-server: processing entries are seeded
 * raw (live and expired leases, owners alive and gone, original workers' ids without lease, missing and
 * corrupt documents), and every test checks the JSON result, the exit code and that nothing but what the
 * command is meant to move changed. Main paths run in-process; exit codes and one-line errors end to end.
 */
import type { Config } from '@oclif/core';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import ProcessingList from '../../src/commands/processing/list.js';
import ProcessingRecover from '../../src/commands/processing/recover.js';
import { Keys } from '../../src/core/keys.js';
import {
  recoverProcessing,
  returnToQueue,
  sha1Hex,
  type ProcessingListing,
  type RecoverReport,
} from '../../src/inspector/processing.js';
import { cleanEnv, keysUnder, oneErrorLine, runCli, type SnapshotBuild } from '../helpers/cli.js';
import { freshPrefix, rawClient, testRedisUrl } from '../helpers/context.js';
import { closeTestBed, inProcessRunner, openTestBed } from '../helpers/in-process.js';
import { jobDocument } from '../helpers/seed.js';
import { changedKeys, snapshot } from '../helpers/snapshot.js';

const OLD = '2025-11-10T04:16:33.123Z';
const HOUR = 3_600_000;

let build: SnapshotBuild;
let config: Config;
let redis: Redis;

beforeAll(async () => {
  ({ build, config, redis } = await openTestBed());
});

afterAll(() => closeTestBed({ build, redis }));

const inProcess = inProcessRunner(() => config);

/** `processing list` in this process (from the sources) under `prefix`. */
function list(prefix: string, ...args: string[]) {
  return inProcess<ProcessingListing>(ProcessingList, args, { prefix });
}

/** `processing recover` in this process (from the sources) under `prefix`. */
function recover(prefix: string, ...args: string[]) {
  return inProcess<RecoverReport>(ProcessingRecover, args, { prefix });
}

function cli(args: string[]) {
  return runCli(build.bin, args, { env: cleanEnv({ REDIS_URL: testRedisUrl() }), timeoutMs: 20_000 });
}

function doc(id: string, fields: Record<string, unknown> = {}): string {
  return jobDocument(id, { payload: { n: 1 }, created_at: OLD, updated_at: OLD, ...fields });
}

/**
 * processing, oldest (rightmost) first: expired (lease expired, owner gone, routed to gpu/high),
 * deadowner (live lease, owner gone, old document), alive (live lease, owner registered), unleased-old,
 * unleased-young (updated a minute ago), ghost (no lease, no document), corrupt (no lease, invalid JSON).
 */
async function seedProcessing(p: string): Promise<number> {
  const now = Date.now();
  const young = new Date(now - 60_000).toISOString();
  await redis
    .multi()
    .set(`${p}job:expired`, doc('expired', { priority: 'high', routing_key: 'gpu' }))
    .set(`${p}job:deadowner`, doc('deadowner', { priority: 'low' }))
    .set(`${p}job:alive`, doc('alive', { name: 'resize' }))
    .set(`${p}job:unleased-old`, doc('unleased-old'))
    .set(`${p}job:unleased-young`, doc('unleased-young', { updated_at: young }))
    .set(`${p}job:corrupt`, '{"id":"corrupt","name":')
    .rpush(
      `${p}queue:processing`,
      'corrupt',
      'ghost',
      'unleased-young',
      'unleased-old',
      'alive',
      'deadowner',
      'expired',
    )
    .zadd(`${p}processing:leases`, now - 5_000, 'expired', now + HOUR, 'deadowner', now + HOUR, 'alive')
    .hset(`${p}processing:owners`, { expired: 'w-gone', deadowner: 'w-gone', alive: 'w-alive' })
    .hset(`${p}worker:w-alive`, { id: 'w-alive', host: 'h' })
    .rpush(`${p}queue:normal`, 'waiting')
    .exec();
  return now;
}

describe('processing list', () => {
  it('every entry with owner, liveness, lease, name and age, oldest first; nothing changes', async () => {
    const prefix = freshPrefix();
    const now = await seedProcessing(prefix);
    const before = await snapshot(redis, prefix);
    const run = await list(prefix, '--json');
    expect(run.exit).toBe(0);
    expect(run.stderr).toBe('');
    const listing = run.result!;
    expect(JSON.parse(run.stdout)).toEqual(JSON.parse(JSON.stringify(listing)));
    expect(listing).toMatchObject({ key: `${prefix}queue:processing`, total: 7, truncated: false });
    expect(listing.counts).toEqual({ lease_live: 2, lease_expired: 1, no_lease: 4, owner_dead: 2 });
    expect(listing.entries.map((e) => e.id)).toEqual([
      'expired',
      'deadowner',
      'alive',
      'unleased-old',
      'unleased-young',
      'ghost',
      'corrupt',
    ]);
    const [expired, deadowner, alive, old, young, ghost, corrupt] = listing.entries;
    expect(expired).toMatchObject({
      name: 'send_email',
      document: 'ok',
      owner: 'w-gone',
      owner_alive: false,
      lease: 'expired',
      updated_at: OLD,
    });
    expect(expired!.lease_remaining_ms).toBeLessThanOrEqual(-5_000);
    expect(Date.parse(expired!.lease_deadline!)).toBeGreaterThan(now - 6_000);
    expect(deadowner).toMatchObject({ owner: 'w-gone', owner_alive: false, lease: 'live' });
    expect(alive).toMatchObject({ name: 'resize', owner: 'w-alive', owner_alive: true, lease: 'live' });
    expect(alive!.lease_remaining_ms).toBeGreaterThan(HOUR - 60_000);
    expect(old).toMatchObject({ owner: null, owner_alive: null, lease: 'none', lease_deadline: null });
    expect(old!.age_ms).toBeGreaterThan(Date.now() - Date.parse(OLD) - 60_000);
    expect(young!.age_ms).toBeGreaterThanOrEqual(60_000);
    expect(young!.age_ms).toBeLessThan(120_000);
    expect(ghost).toMatchObject({ name: null, document: 'missing', age_ms: null, updated_at: null });
    expect(corrupt).toMatchObject({ name: null, document: 'invalid_json', age_ms: null });
    expect(await snapshot(redis, prefix)).toEqual(before);
  });

  it('--limit lists the oldest entries only; the counts still cover the whole list', async () => {
    const prefix = freshPrefix();
    await seedProcessing(prefix);
    const listing = (await list(prefix, '--json', '--limit', '2')).result!;
    expect(listing.entries.map((e) => e.id)).toEqual(['expired', 'deadowner']);
    expect(listing).toMatchObject({ total: 7, truncated: true });
    expect(listing.counts).toEqual({ lease_live: 2, lease_expired: 1, no_lease: 4, owner_dead: 2 });
  });

  it('human output: a table, the summary and what to do about stuck jobs; an empty list says so', async () => {
    const prefix = freshPrefix();
    await seedProcessing(prefix);
    const run = await list(prefix);
    expect(run.stdout).toMatch(/ID\s+│\s+NAME\s+│\s+OWNER\s+│\s+LEASE\s+│\s+AGE/);
    expect(run.stdout).toMatch(/deadowner\s+│\s+send_email\s+│\s+w-gone \(gone\)/);
    expect(run.stdout).toMatch(/ghost\s+│\s+\(no document\)/);
    expect(run.stdout).toContain('7 in processing, 2 leased, 1 lease expired, 4 without lease, 2 owner gone');
    expect(run.stdout).toContain('bananas processing recover --dry-run');
    const empty = await list(freshPrefix());
    expect(empty.stdout).toMatch(/^Nothing in processing \(\{?bt-[0-9a-f]{8}\}?:queue:processing\)\.\n$/);
  });
});

describe('processing recover', () => {
  it('by default returns only jobs whose lease expired, to the head (right end) of their own queue', async () => {
    const prefix = freshPrefix();
    const k = (s: string) => `${prefix}${s}`;
    await seedProcessing(prefix);
    await redis.rpush(k('route:gpu:queue:high'), 'queued-before');
    const before = await snapshot(redis, prefix);
    const run = await recover(prefix, '--yes', '--json');
    expect(run.exit).toBe(0);
    const report = run.result!;
    expect(report).toMatchObject({
      dry_run: false,
      moved: 1,
      changed: 0,
      examined: 7,
      by_reason: { lease_expired: 1, owner_dead: 0, unleased: 0 },
      left: { lease_live: 2, unleased: 4, unleased_unknown_age: 0, over_limit: 0 },
    });
    expect(report.jobs).toEqual([
      {
        id: 'expired',
        name: 'send_email',
        reason: 'lease_expired',
        owner: 'w-gone',
        lease_deadline: expect.any(String),
        age_ms: expect.any(Number),
        queue: k('route:gpu:queue:high'),
      },
    ]);
    // RPUSH: consumers take from the right, so it runs next.
    expect(await redis.lrange(k('route:gpu:queue:high'), 0, -1)).toEqual(['queued-before', 'expired']);
    expect(await redis.lrange(k('queue:processing'), 0, -1)).toEqual([
      'corrupt',
      'ghost',
      'unleased-young',
      'unleased-old',
      'alive',
      'deadowner',
    ]);
    const after = await snapshot(redis, prefix);
    expect(changedKeys(before, after)).toEqual(
      [
        'processing:leases',
        'processing:owners',
        'queue:processing',
        'route:gpu:queue:high',
        'route:gpu:signal',
      ].map(k),
    );
    expect(after[k('processing:leases')]!.value).not.toContain('expired');
    expect(after[k('processing:owners')]!.value).toEqual({ deadowner: 'w-gone', alive: 'w-alive' });
  });

  it('--older-than also returns leased jobs of workers that are gone, when the document is that old', async () => {
    const prefix = freshPrefix();
    const k = (s: string) => `${prefix}${s}`;
    await seedProcessing(prefix);
    const report = (await recover(prefix, '--yes', '--json', '--older-than', '10m')).result!;
    expect(report.jobs.map((j) => [j.id, j.reason, j.queue])).toEqual([
      ['expired', 'lease_expired', k('route:gpu:queue:high')],
      ['deadowner', 'owner_dead', k('queue:low')],
    ]);
    expect(report.left).toEqual({ lease_live: 1, unleased: 4, unleased_unknown_age: 0, over_limit: 0 });
    expect(await redis.lrange(k('queue:low'), 0, -1)).toEqual(['deadowner']);
    expect(await redis.hgetall(k('processing:owners'))).toEqual({ alive: 'w-alive' });
  });

  it('--include-unleased returns ids without lease older than --older-than; young and unknown-age ones stay', async () => {
    const prefix = freshPrefix();
    const k = (s: string) => `${prefix}${s}`;
    await seedProcessing(prefix);
    const report = (await recover(prefix, '--yes', '--json', '--older-than', '10m', '--include-unleased'))
      .result!;
    expect(report.jobs.map((j) => j.id)).toEqual(['expired', 'deadowner', 'unleased-old']);
    expect(report.by_reason).toEqual({ lease_expired: 1, owner_dead: 1, unleased: 1 });
    expect(report.left).toEqual({ lease_live: 1, unleased: 1, unleased_unknown_age: 2, over_limit: 0 });
    expect(await redis.lrange(k('queue:normal'), 0, -1)).toEqual(['waiting', 'unleased-old']);
    expect(await redis.lrange(k('queue:processing'), 0, -1)).toEqual([
      'corrupt',
      'ghost',
      'unleased-young',
      'alive',
    ]);
  });

  it('--dry-run lists exactly what the real run then does, and changes nothing', async () => {
    const prefix = freshPrefix();
    await seedProcessing(prefix);
    const before = await snapshot(redis, prefix);
    const args = ['--json', '--older-than', '10m', '--include-unleased'];
    const dry = (await recover(prefix, '--dry-run', ...args)).result!;
    expect(dry.dry_run).toBe(true);
    expect(await snapshot(redis, prefix)).toEqual(before);
    const real = (await recover(prefix, '--yes', ...args)).result!;
    const view = (r: RecoverReport) => r.jobs.map((j) => ({ id: j.id, reason: j.reason, queue: j.queue }));
    expect(view(dry)).toEqual(view(real));
    expect(dry.moved).toBe(3);
    expect(real.moved).toBe(3);
    const human = await recover(freshPrefix(), '--dry-run');
    expect(human.stdout).toContain('Would return 0 of 0 jobs in processing to their queue.');
    expect(human.stdout).toContain('Dry run: nothing was changed.');
  });

  it('what changed after the confirmation is judged again: a worker that came back, a job an original worker just finished', async () => {
    const prefix = freshPrefix();
    const k = (s: string) => `${prefix}${s}`;
    await seedProcessing(prefix);
    const client = rawClient();
    try {
      const report = await recoverProcessing(client, prefix, {
        olderThanMs: 10 * 60_000,
        includeUnleased: true,
        dryRun: false,
        confirm: async (count) => {
          expect(count).toBe(3);
          await redis
            .multi()
            .zadd(k('processing:leases'), Date.now() + HOUR, 'expired') // the worker renewed its lease…
            .hset(k('worker:w-gone'), 'id', 'w-gone') // …and heartbeats again
            .set(
              k('job:unleased-old'),
              doc('unleased-old', { status: 'completed', updated_at: new Date().toISOString() }),
            )
            .exec();
        },
      });
      expect(report.moved).toBe(0);
      expect(report.left).toMatchObject({ lease_live: 3, unleased: 2 });
      expect(await redis.llen(k('queue:processing'))).toBe(7);
      expect(await redis.lrange(k('queue:normal'), 0, -1)).toEqual(['waiting']);
    } finally {
      client.disconnect();
    }
  });

  it('the move script re-checks each entry atomically: changed lease, owner, document or membership → left alone', async () => {
    const prefix = freshPrefix();
    const k = (s: string) => `${prefix}${s}`;
    await seedProcessing(prefix);
    const keys = new Keys(prefix);
    const seen = {
      expired: (await redis.zscore(k('processing:leases'), 'expired'))!,
      deadowner: (await redis.zscore(k('processing:leases'), 'deadowner'))!,
      alive: (await redis.zscore(k('processing:leases'), 'alive'))!,
      unleasedOld: sha1Hex((await redis.getBuffer(k('job:unleased-old')))!),
    };
    // What the caller saw is now stale:
    await redis
      .multi()
      .zadd(k('processing:leases'), Date.now() + 2 * HOUR, 'expired')
      .hset(k('processing:owners'), 'deadowner', 'w-other')
      .set(k('job:unleased-old'), doc('unleased-old', { status: 'completed' }))
      .lrem(k('queue:processing'), 0, 'unleased-young')
      .exec();
    const before = await snapshot(redis, prefix);
    const moved = await returnToQueue(redis, keys, [
      { id: 'expired', deadline: seen.expired, owner: 'w-gone', sha: '' },
      { id: 'deadowner', deadline: seen.deadowner, owner: 'w-gone', sha: '' },
      { id: 'unleased-old', deadline: '', owner: '', sha: seen.unleasedOld },
      { id: 'unleased-young', deadline: '', owner: '', sha: '' },
      { id: 'ghost', deadline: '', owner: '', sha: sha1Hex(Buffer.from('not what is stored')) },
    ]);
    expect(moved).toEqual([null, null, null, null, null]);
    expect(await snapshot(redis, prefix)).toEqual(before);
    // The same call with what is really there moves them.
    const ok = await returnToQueue(redis, keys, [
      { id: 'alive', deadline: seen.alive, owner: 'w-alive', sha: '' },
      { id: 'ghost', deadline: '', owner: '', sha: '-' },
    ]);
    expect(ok).toEqual([k('queue:normal'), k('queue:normal')]);
    expect(await redis.lrange(k('queue:normal'), 0, -1)).toEqual(['waiting', 'alive', 'ghost']);
  });

  it('pages through a long list while moving entries: exactly the movable ones move, the rest keep their order', async () => {
    const prefix = freshPrefix();
    const k = (s: string) => `${prefix}${s}`;
    const now = Date.now();
    const ids = Array.from({ length: 1600 }, (_, i) => `j${i}`);
    const live = ids.filter((_, i) => i % 4 === 0);
    for (let i = 0; i < ids.length; i += 500) {
      const m = redis.multi();
      for (const id of ids.slice(i, i + 500)) {
        m.set(k(`job:${id}`), doc(id));
        m.zadd(k('processing:leases'), live.includes(id) ? now + HOUR : now - 1000, id);
        m.hset(k('processing:owners'), id, 'w');
      }
      m.rpush(k('queue:processing'), ...ids.slice(i, i + 500));
      await m.exec();
    }
    const report = (await recover(prefix, '--yes', '--json')).result!;
    expect(report.examined).toBe(1600);
    expect(report.moved).toBe(1600 - live.length);
    expect(report.left.lease_live).toBe(live.length);
    expect(report.jobs).toHaveLength(1000);
    expect(report.jobs_truncated).toBe(true);
    expect(await redis.lrange(k('queue:processing'), 0, -1)).toEqual(live);
    expect(await redis.llen(k('queue:normal'))).toBe(1600 - live.length);
  });

  it('--limit moves at most that many (the oldest) and counts the rest', async () => {
    const prefix = freshPrefix();
    await seedProcessing(prefix);
    const report = (await recover(prefix, '--yes', '--json', '--older-than', '10m', '--limit', '1')).result!;
    expect(report.jobs.map((j) => j.id)).toEqual(['expired']);
    expect(report.left.over_limit).toBe(1);
  });
});

describe('processing: the built CLI', () => {
  it('--json prints one JSON document: list and recover exit 0', async () => {
    const prefix = freshPrefix();
    await seedProcessing(prefix);
    const list = await cli(['processing', 'list', '--json', '--prefix', prefix]);
    expect(list.code).toBe(0);
    expect(list.stderr).toBe('');
    expect(JSON.parse(list.stdout)).toMatchObject({ total: 7 });
    const recover = await cli(['processing', 'recover', '--yes', '--json', '--prefix', prefix]);
    expect(recover.code).toBe(0);
    expect(recover.stderr).toBe('');
    expect(JSON.parse(recover.stdout)).toMatchObject({ moved: 1, dry_run: false, include_unleased: false });
  });

  it('recover without --yes is refused when stdin is not a terminal: exit 2, one line, nothing changed', async () => {
    const prefix = freshPrefix();
    await seedProcessing(prefix);
    const before = await snapshot(redis, prefix);
    const result = await cli(['processing', 'recover', '--prefix', prefix]);
    expect(result.code).toBe(2);
    expect(result.stdout).toBe('');
    expect(oneErrorLine(result)).toMatch(/refused without --yes \(stdin is not a terminal\)/);
    expect(await snapshot(redis, prefix)).toEqual(before);
  });

  describe.concurrent('bad input exits 2 with one line and changes nothing', () => {
    it.for<[string, string[], RegExp]>([
      [
        '--include-unleased without --older-than',
        ['recover', '--yes', '--include-unleased'],
        /--include-unleased needs --older-than/,
      ],
      ['--older-than abc', ['recover', '--yes', '--older-than', 'abc'], /invalid --older-than "abc"/],
      ['--older-than 0', ['recover', '--yes', '--older-than', '0'], /--older-than must be more than 0/],
      ['--limit 0', ['recover', '--yes', '--limit', '0'], /--limit must be a whole number ≥ 1/],
      ['list --limit x', ['list', '--limit', 'x'], /--limit must be a whole number/],
      ['an unknown flag', ['list', '--bogus'], /Nonexistent flag: --bogus/],
    ])('%s', async ([, args, message], { expect }) => {
      const prefix = freshPrefix();
      await redis.rpush(`${prefix}queue:processing`, 'x');
      const result = await cli(['processing', ...args, '--prefix', prefix]);
      expect(result.code).toBe(2);
      expect(result.stdout).toBe('');
      expect(oneErrorLine(result)).toMatch(message);
      expect(await keysUnder(redis, prefix)).toEqual([`${prefix}queue:processing`]);
      expect(await redis.lrange(`${prefix}queue:processing`, 0, -1)).toEqual(['x']);
    });
  });

  it('unreachable Redis: exit 4 and one line, for both commands', async () => {
    for (const command of [['list'], ['recover', '--yes']]) {
      const result = await cli(['processing', ...command, '--redis-url', 'redis://127.0.0.1:1']);
      expect(result.code).toBe(4);
      expect(oneErrorLine(result)).toMatch(/cannot reach Redis/);
    }
  });
});
