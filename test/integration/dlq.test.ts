/**
 * The dead-letter queue operations (src/inspector/dlq*.ts and their Lua scripts) in-process against the
 * test redis-server: inspect, requeue, backup, restore and clear, on the broken states the runbook
 * describes (the original's stubs, corrupt documents, ids without a document, duplicates) and under
 * concurrent change (another requeue, jobs failing again, documents rewritten meanwhile). Every test
 * snapshots the prefix and checks that nothing but what the operation is meant to change changed.
 * The CLI end to end (exit codes, one-line errors, --json, signals) is in dlq-cli.test.ts.
 */
import { gunzipSync } from 'node:zlib';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { decodeJob, parseTimestamp, type Job } from '../../src/core/codec.js';
import { ConflictError, NotFoundError, UsageError } from '../../src/core/errors.js';
import { Keys } from '../../src/core/keys.js';
import { runScript } from '../../src/core/scripts.js';
import {
  backupDeadLetters,
  clearDeadLetters,
  inspectDeadLetters,
  requeueDeadLetters,
  restoreDeadLetters,
  type RequeueOptions,
  type RequeueResult,
} from '../../src/inspector/dlq.js';
import { errorPattern, SeenIds } from '../../src/inspector/dlq-common.js';
import { freshPrefix, rawClient } from '../helpers/context.js';
import { deadJobDocument, loadVectors, seedVectors } from '../helpers/seed.js';
import { snapshot, type KeySnapshot } from '../helpers/snapshot.js';

let redis: Redis;
let prefix: string;
let keys: Keys;
let scratch: string;
const extraClients: Redis[] = [];

beforeAll(() => {
  scratch = mkdtempSync(join(tmpdir(), 'bananas-dlq-test-'));
});

afterAll(() => {
  rmSync(scratch, { recursive: true, force: true });
});

beforeEach(() => {
  redis = rawClient();
  prefix = freshPrefix();
  keys = new Keys(prefix);
});

afterEach(() => {
  redis.disconnect();
  for (const client of extraClients.splice(0)) client.disconnect();
});

function client(): Redis {
  const c = rawClient();
  extraClients.push(c);
  return c;
}

const WEEK = 7 * 24 * 3600;

interface Dead {
  id: string;
  /** Default: deadJobDocument(id); null: no document. */
  doc?: string | Buffer | null;
  /** Seconds; default a week (as dead documents have); 0: no TTL. */
  ttl?: number;
}

/** Writes the entries oldest first: their documents, then LPUSH of their ids (the last is the newest). */
async function seedDead(entries: Dead[]): Promise<void> {
  for (let start = 0; start < entries.length; start += 5000) {
    const chunk = entries.slice(start, start + 5000);
    const pipeline = redis.pipeline();
    for (const entry of chunk) {
      if (entry.doc === null) continue;
      const doc = entry.doc ?? deadJobDocument(entry.id);
      if (entry.ttl === 0) pipeline.set(keys.job(entry.id), doc);
      else pipeline.set(keys.job(entry.id), doc, 'EX', entry.ttl ?? WEEK);
    }
    pipeline.lpush(keys.dead, ...chunk.map((e) => e.id));
    await pipeline.exec();
  }
}

function ids(n: number, tag = 'job'): string[] {
  return Array.from({ length: n }, (_, i) => `${tag}-${String(i).padStart(5, '0')}`);
}

/** Every key of the prefix except `changed`; the snapshots must be equal. */
function without(snap: Record<string, KeySnapshot>, changed: string[]): Record<string, KeySnapshot> {
  const out = { ...snap };
  for (const key of changed) delete out[key];
  return out;
}

async function decoded(id: string): Promise<Job> {
  const stored = await redis.getBuffer(keys.job(id));
  expect(stored, `document of ${id}`).not.toBeNull();
  const result = decodeJob(stored as Buffer);
  if (!result.ok) throw new Error(`document of ${id} does not decode: ${result.reason}`);
  return result.job;
}

function requeue(options: Partial<RequeueOptions> & Pick<RequeueOptions, 'selection'>, c: Redis = redis) {
  return requeueDeadLetters(c, prefix, options);
}

/** A requeued document: attempts 0, pending, no TTL, no scheduled_for, updated_at just now. */
async function expectReady(id: string, before: number, priority?: string): Promise<Job> {
  const job = await decoded(id);
  expect(job.attempts).toBe(0);
  expect(job.status).toBe('pending');
  expect(job.scheduledFor).toBeUndefined();
  expect(parseTimestamp(job.updatedAt)!.getTime()).toBeGreaterThanOrEqual(before - 5);
  expect(await redis.pttl(keys.job(id))).toBe(-1);
  if (priority) expect(job.priority).toBe(priority);
  return job;
}

// ---------------------------------------------------------------------------------------------------
// inspect
// ---------------------------------------------------------------------------------------------------

describe('dlq inspect', () => {
  it('lists the original deployment DLQ newest first, stubs and missing documents as such, changing nothing', async () => {
    await seedVectors(redis, loadVectors('go-original'), prefix);
    await seedDead([
      { id: 'no-doc', doc: null },
      { id: 'bad-json', doc: '{"id":"bad-json",', ttl: 0 },
    ]);
    const before = await snapshot(redis, prefix);

    const report = await inspectDeadLetters(redis, prefix);

    expect(await snapshot(redis, prefix)).toEqual(before);
    expect(report.length).toBe(6);
    expect(report.examined).toBe(6);
    expect(report.matched).toBe(6);
    expect(report.entries.map((e) => [e.id, e.state])).toEqual([
      ['bad-json', 'corrupt'],
      ['no-doc', 'missing'],
      ['8e9f0a1b-2c3d-4e5f-8a6b-7c8d9e0f1a2b', 'stub'],
      ['6c7d8e9f-0a1b-4c2d-9e3f-4a5b6c7d8e9f', 'stub'],
      ['4b5c6d7e-8f90-4a1b-8c2d-3e4f5a6b7c8d', 'stub'],
      ['7e6d5c4b-3a29-4180-9f7e-6d5c4b3a2918', 'job'],
    ]);
    const job = report.entries[5]!;
    expect(job).toMatchObject({
      name: 'charge_card',
      priority: 'high',
      routing_key: 'default',
      attempts: 3,
      max_retries: 3,
      failed_at: '2025-11-10T04:16:47Z',
      error: 'card declined',
    });
    expect(job.ttl_ms).toBeGreaterThan((WEEK - 60) * 1000);
    expect(job.ttl_ms).toBeLessThanOrEqual(WEEK * 1000);
    expect(report.entries[1]).toMatchObject({ name: null, error: 'document missing', ttl_ms: null });
    expect(report.entries[0]).toMatchObject({ state: 'corrupt', ttl_ms: null });
    expect(report.entries[0]!.error).toMatch(/^invalid JSON/);
    expect(report.entries[4]!.error).toBe('Job data not found (corrupted reference)');
    expect(report.totals.by_state).toEqual({ job: 1, stub: 3, corrupt: 1, missing: 1 });
    expect(report.totals.by_name).toEqual([{ name: 'charge_card', count: 1 }]);
    const errors = Object.fromEntries(report.totals.by_error.map((e) => [e.error, e.count]));
    expect(errors['card declined']).toBe(1);
    expect(errors['document missing']).toBe(1);
    expect(errors['Job data not found (corrupted reference)']).toBe(1);
    expect(report.totals.by_error.reduce((sum, e) => sum + e.count, 0) + report.totals.other_errors).toBe(6);
  });

  it('filters (name, grep, since) before offset and limit; totals cover every match of the whole list', async () => {
    const now = Date.parse('2030-01-01T12:00:00Z');
    const entries: Dead[] = ids(2500).map((id, i) => ({
      id,
      doc: deadJobDocument(id, {
        name: ['send_email', 'charge_card', 'resize'][i % 3],
        error:
          i % 2 ? `context deadline exceeded (job timeout ${300 + i} ms)` : `card declined for order ${i}`,
        updated_at: new Date(now - i * 60_000).toISOString(), // the newest entry failed last
      }),
    }));
    await seedDead(entries.reverse()); // job-00000 ends up newest
    const before = await snapshot(redis, prefix);
    const atNow = new Date(now);

    const all = await inspectDeadLetters(redis, prefix, { pageSize: 100, limit: 3, now: atNow });
    expect(all.entries.map((e) => e.id)).toEqual(['job-00000', 'job-00001', 'job-00002']);
    expect(all.matched).toBe(2500);
    expect(all.totals.by_name).toEqual([
      { name: 'send_email', count: 834 },
      { name: 'charge_card', count: 833 },
      { name: 'resize', count: 833 },
    ]);
    expect(all.totals.by_error).toEqual([
      { error: 'card declined for order <n>', count: 1250 },
      { error: 'context deadline exceeded (job timeout <n> ms)', count: 1250 },
    ]);

    const filtered = await inspectDeadLetters(redis, prefix, {
      pageSize: 100,
      names: ['charge_card'],
      grep: 'DEADLINE',
      sinceMs: 600 * 60_000,
      offset: 2,
      limit: 4,
      now: atNow,
    });
    // charge_card: i % 3 == 1; deadline: odd i; failed within 600 min: i <= 600 → i = 1, 7, 13, …
    const expected = Array.from({ length: 101 }, (_, k) => 1 + 6 * k).filter((i) => i <= 600);
    expect(filtered.matched).toBe(expected.length);
    expect(filtered.entries.map((e) => e.id)).toEqual(expected.slice(2, 6).map((i) => ids(2500)[i]));
    expect(filtered.totals.by_name).toEqual([{ name: 'charge_card', count: expected.length }]);
    expect(filtered.totals.by_state.job).toBe(expected.length);
    expect(filtered.filters).toEqual({ names: ['charge_card'], grep: 'DEADLINE', since_ms: 36_000_000 });

    const pastTheEnd = await inspectDeadLetters(redis, prefix, { offset: 5000, now: atNow });
    expect(pastTheEnd.entries).toEqual([]);
    expect(pastTheEnd.matched).toBe(2500);
    expect(await snapshot(redis, prefix)).toEqual(before);
  });

  it('refuses meaningless options before reading anything', async () => {
    await expect(inspectDeadLetters(redis, prefix, { limit: 0 })).rejects.toThrow(UsageError);
    await expect(inspectDeadLetters(redis, prefix, { limit: 10_001 })).rejects.toThrow(UsageError);
    await expect(inspectDeadLetters(redis, prefix, { offset: -1 })).rejects.toThrow(UsageError);
    await expect(inspectDeadLetters(redis, prefix, { grep: '' })).rejects.toThrow(UsageError);
    await expect(inspectDeadLetters(redis, prefix, { sinceMs: 0 })).rejects.toThrow(UsageError);
  });

  it('groups errors by pattern and shortens long errors', async () => {
    expect(errorPattern('order 12 for 0b6f1a52-3c1e-4d8a-9f2e-6a7d5c4b3e21 failed\nstack…')).toBe(
      'order <n> for <uuid> failed',
    );
    const long = 'x'.repeat(1000);
    await seedDead([{ id: 'long', doc: deadJobDocument('long', { error: long }) }]);
    const report = await inspectDeadLetters(redis, prefix);
    expect(report.entries[0]!.error).toHaveLength(300);
    expect(report.entries[0]!.error.endsWith('…')).toBe(true);
  });
});

// ---------------------------------------------------------------------------------------------------
// requeue
// ---------------------------------------------------------------------------------------------------

describe('dlq requeue', () => {
  it('--all on the original deployment: the dead job is runnable again, the stubs stay byte for byte', async () => {
    await seedVectors(redis, loadVectors('go-original'), prefix);
    const before = await snapshot(redis, prefix);
    const started = Date.now();
    const jobId = '7e6d5c4b-3a29-4180-9f7e-6d5c4b3a2918';

    const result = await requeue({ selection: { all: true } });

    expect(result).toMatchObject({
      dry_run: false,
      to: 'original',
      dlq_length: 4,
      examined: 4,
      requeued: 1,
      stub: 3,
      corrupt: 0,
      missing_document: 0,
      changed: 0,
      gone: 0,
      duplicate: 0,
      interrupted: false,
      ids: [jobId],
      queues: [{ queue: `${prefix}queue:high`, count: 1 }],
    });
    const job = await expectReady(jobId, started, 'high');
    // The codec rewrite keeps everything else: payload bytes, description, the last error, the route.
    const stored = (await redis.get(keys.job(jobId)))!;
    expect(stored).toContain('"payload":{"amount":1999,"currency":"USD"}');
    expect(job).toMatchObject({
      description: 'Charge order #42',
      error: 'card declined',
      routingKey: 'default',
    });
    expect(await redis.lrange(keys.queue('high'), 0, -1)).toEqual([jobId]);
    expect(await redis.lrange(keys.signal(), 0, -1)).toEqual(['1']);
    const vectorDead = loadVectors('go-original').keys['bananas:queue:dead']!.value as string[];
    expect(await redis.lrange(keys.dead, 0, -1)).toEqual(vectorDead.filter((id) => id !== jobId));
    expect(
      without(await snapshot(redis, prefix), [keys.dead, keys.job(jobId), keys.queue('high'), keys.signal()]),
    ).toEqual(without(before, [keys.dead, keys.job(jobId)]));
  });

  it('oldest first into each route and priority, FIFO kept; --to overrides the priority, the route stays', async () => {
    const pythonDoc = (id: string, extra: string) =>
      `{"id": "${id}", "name": "transcode", "description": "", "payload": {"video": "v1.mp4", "ratio": 1.0, "big": 12345678901234567890}, "status": "failed", "priority": "low", "created_at": "2026-11-28T14:52:29.195893+00:00", "updated_at": "2026-11-28T14:52:29.195893+00:00", "scheduled_for": "2026-11-28T14:53:00", "attempts": 2, "max_retries": 2, "error": "gpu lost", "routing_key": "gpu"${extra}}`;
    await seedDead([
      { id: 'a', doc: pythonDoc('a', ', "trace": {"span": [1, 2]}') },
      { id: 'b' },
      { id: 'c', doc: pythonDoc('c', '') },
      { id: 'd', doc: deadJobDocument('d', { priority: 'urgent' }) },
    ]);
    const started = Date.now();

    const result = await requeue({ selection: { all: true }, to: 'high' });

    expect(result.requeued).toBe(4);
    expect(result.ids).toEqual(['a', 'b', 'c', 'd']);
    expect(await redis.lrange(keys.queue('high', 'gpu'), 0, -1)).toEqual(['c', 'a']); // a is taken first (RPOP)
    expect(await redis.lrange(keys.queue('high'), 0, -1)).toEqual(['d', 'b']);
    expect(await redis.llen(keys.dead)).toBe(0);
    expect(await redis.lrange(keys.signal('gpu'), 0, -1)).toEqual(['1']);
    const a = await expectReady('a', started, 'high');
    expect(a.routingKey).toBe('gpu');
    const stored = (await redis.get(keys.job('a')))!;
    expect(stored).toContain('"payload":{"video": "v1.mp4", "ratio": 1.0, "big": 12345678901234567890}');
    expect(stored).toContain('"trace":{"span": [1, 2]}');
    expect(stored).not.toContain('scheduled_for');
    await expectReady('d', started, 'high');
  });

  it('--id moves exactly those ids from anywhere in the list, not the oldest', async () => {
    await seedDead(ids(5).map((id) => ({ id })));
    const before = await snapshot(redis, prefix);
    const started = Date.now();

    const result = await requeue({ selection: { ids: ['job-00002', 'job-00004', 'job-00002'] } });

    expect(result).toMatchObject({
      selection: 'ids',
      requeued: 2,
      examined: 2,
      ids: ['job-00002', 'job-00004'],
    });
    expect(await redis.lrange(keys.dead, 0, -1)).toEqual(['job-00003', 'job-00001', 'job-00000']);
    expect(await redis.lrange(keys.queue('normal'), 0, -1)).toEqual(['job-00004', 'job-00002']);
    await expectReady('job-00002', started);
    await expectReady('job-00004', started);
    expect(
      without(await snapshot(redis, prefix), [
        keys.dead,
        keys.queue('normal'),
        keys.signal(),
        keys.job('job-00002'),
        keys.job('job-00004'),
      ]),
    ).toEqual(without(before, [keys.dead, keys.job('job-00002'), keys.job('job-00004')]));
  });

  it('--id refuses unknown ids, unusable documents and bad ids, changing nothing', async () => {
    await seedDead([
      { id: 'good' },
      { id: 'stub', doc: '{"error":"Job data not found (corrupted reference)","id":"stub"}' },
      { id: 'corrupt', doc: '{"id":"corrupt","name":', ttl: 0 },
      { id: 'no-doc', doc: null },
    ]);
    const before = await snapshot(redis, prefix);
    const cases: Array<[string[], new (message: string) => Error, RegExp]> = [
      [['good', 'nope'], NotFoundError, /not in the dead-letter queue .*: nope; nothing was requeued/],
      [['good', 'stub'], ConflictError, /cannot requeue stub \(its document is a stub.*nothing was requeued/],
      [['corrupt'], ConflictError, /cannot requeue corrupt \(its document is corrupt: invalid JSON/],
      [['no-doc'], ConflictError, /no-doc \(it has no document\)/],
      [['job-*'], UsageError, /glob characters/],
      [['job[1]'], UsageError, /glob characters/],
      [[''], UsageError, /invalid job id/],
      [['x'.repeat(10 * 1024)], UsageError, /invalid job id/],
      [['a b'], UsageError, /invalid job id/],
      [[], UsageError, /at least one --id/],
      [ids(1001), UsageError, /at most 1000 --id/],
    ];
    for (const [requested, type, message] of cases) {
      const attempt = requeue({ selection: { ids: requested } });
      await expect(attempt, requested.join(',').slice(0, 40)).rejects.toThrow(type);
      await expect(requeue({ selection: { ids: requested } })).rejects.toThrow(message);
    }
    await expect(requeue({ selection: { filter: {} } })).rejects.toThrow(/needs --name, --grep or --since/);
    await expect(requeue({ selection: { all: true }, limit: 0 })).rejects.toThrow(UsageError);
    await expect(requeue({ selection: { all: true }, to: 'urgent' as 'high' })).rejects.toThrow(UsageError);
    expect(await snapshot(redis, prefix)).toEqual(before);
  });

  it('a filtered sweep over many entries it leaves, in small batches, moves exactly the matches, in order', async () => {
    const all = ids(3000);
    await seedDead(
      all.map((id, i) => ({
        id,
        doc:
          i % 97 === 5
            ? `{corrupt ${i}`
            : deadJobDocument(id, {
                name: i % 3 === 1 ? 'send_email' : 'charge_card',
                error: i % 2 ? 'smtp timeout' : 'card declined',
              }),
      })),
    );
    const matching = all.filter((_, i) => i % 3 === 1 && i % 2 === 1 && i % 97 !== 5);
    const before = await snapshot(redis, prefix);

    const result = await requeue({
      selection: { filter: { names: ['send_email'], grep: 'TIMEOUT' } },
      batchSize: 64,
    });

    expect(result.requeued).toBe(matching.length);
    expect(result.examined).toBe(3000);
    expect(result.not_matching + result.corrupt).toBe(3000 - matching.length);
    expect(result.corrupt).toBe(0); // corrupt entries never match a name filter
    expect(result.changed + result.gone + result.duplicate).toBe(0);
    // Newest at the head: the ready list holds them in the dead-letter list's order.
    expect(await redis.lrange(keys.queue('normal'), 0, -1)).toEqual([...matching].reverse());
    const left = all.filter((id) => !matching.includes(id));
    expect(await redis.lrange(keys.dead, 0, -1)).toEqual([...left].reverse());
    const untouched = without(before, [keys.dead, ...matching.map((id) => keys.job(id))]);
    expect(
      without(await snapshot(redis, prefix), [
        keys.dead,
        keys.queue('normal'),
        keys.signal(),
        ...matching.map((id) => keys.job(id)),
      ]),
    ).toEqual(untouched);
  });

  it('--limit moves the oldest matching jobs only; --dry-run reports exactly what a run does and changes nothing', async () => {
    await seedDead([
      ...ids(10).map((id) => ({ id })),
      { id: 'stub', doc: '{"error":"Job data not found (corrupted reference)","id":"stub"}' },
      { id: 'no-doc', doc: null },
      { id: 'bad', doc: 'not json', ttl: 0 },
    ]);
    const before = await snapshot(redis, prefix);

    const dry = await requeue({ selection: { all: true }, dryRun: true, batchSize: 4 });
    expect(await snapshot(redis, prefix)).toEqual(before);
    expect(dry).toMatchObject({
      dry_run: true,
      requeued: 10,
      stub: 1,
      missing_document: 1,
      corrupt: 1,
      examined: 13,
    });

    const limited = await requeue({ selection: { all: true }, limit: 3, batchSize: 2 });
    expect(limited.requeued).toBe(3);
    expect(limited.ids).toEqual(['job-00000', 'job-00001', 'job-00002']);

    const dryRest = await requeue({ selection: { all: true }, dryRun: true });
    const rest = await requeue({ selection: { all: true } });
    const comparable = (r: RequeueResult) => ({ ...r, dry_run: undefined, duration_ms: undefined });
    expect(comparable(dryRest)).toEqual(comparable(rest));
    expect(rest.requeued).toBe(7);
    expect(await redis.lrange(keys.dead, 0, -1)).toEqual(['bad', 'no-doc', 'stub']);
  });

  it('entries left at the tail keep their place and order when the jobs next to them are cut out', async () => {
    const stub = (id: string) => ({
      id,
      doc: `{"error":"Job data not found (corrupted reference)","id":"${id}"}`,
    });
    const jobs = ids(50);
    await seedDead([
      stub('old-1'),
      stub('old-2'),
      ...jobs.slice(0, 25).map((id) => ({ id })),
      stub('mid'),
      ...jobs.slice(25).map((id) => ({ id })),
    ]);
    const result = await requeue({ selection: { all: true }, batchSize: 10 });
    expect(result).toMatchObject({ requeued: 50, stub: 3, changed: 0, gone: 0 });
    expect(await redis.lrange(keys.dead, 0, -1)).toEqual(['mid', 'old-2', 'old-1']);
    expect(await redis.lrange(keys.queue('normal'), 0, -1)).toEqual([...jobs].reverse());
    expect(await redis.get(keys.job('old-1'))).toBe(
      '{"error":"Job data not found (corrupted reference)","id":"old-1"}',
    );
  });

  it('leaves an entry whose document was rewritten or deleted after it was read', async () => {
    await seedDead(ids(30).map((id) => ({ id })));
    const rewritten = deadJobDocument('job-00015', { error: 'edited by an operator' });
    let calls = 0;
    const result = await requeue({
      selection: { all: true },
      batchSize: 10,
      // After the first batch settles the second one is already read and planned (its script not sent):
      // change two of its documents on the same connection, so the change lands before that script.
      onProgress: () => {
        if (calls++ === 0) {
          void redis.set(keys.job('job-00015'), rewritten);
          void redis.del(keys.job('job-00017'));
        }
      },
    });
    expect(result).toMatchObject({ requeued: 28, changed: 2, gone: 0 });
    expect(await redis.lrange(keys.dead, 0, -1)).toEqual(['job-00017', 'job-00015']);
    expect(await redis.get(keys.job('job-00015'))).toBe(rewritten);
    expect(await redis.exists(keys.job('job-00017'))).toBe(0);
    expect(await redis.llen(keys.queue('normal'))).toBe(28);
  });

  it('the script moves an entry only if it is still listed with the very bytes that were read', async () => {
    await seedDead([{ id: 'a' }, { id: 'b' }]);
    const before = await snapshot(redis, prefix);
    const ready = deadJobDocument('b', { attempts: 0, status: 'pending' });
    const codes = await runScript<number[]>(
      redis,
      'dlq-requeue',
      [keys.dead],
      [
        '\u0000tomb',
        10,
        keys.job(''),
        1,
        keys.queue('high'),
        keys.signal(),
        3,
        '-1 1 -2 1 0 1', // expected position and target of each entry; 0: unknown, searched
        // id, document as read, new document
        ...['a', `${deadJobDocument('a')} `, 'new a'], // one byte differs
        ...['zzz', deadJobDocument('zzz'), 'new zzz'], // not in the list
        ...['b', deadJobDocument('b'), ready], // found and moved
      ],
    );
    expect(codes).toEqual([0, -1, 1]);
    expect(await redis.lrange(keys.dead, 0, -1)).toEqual(['a']);
    expect(await redis.lrange(keys.queue('high'), 0, -1)).toEqual(['b']);
    expect(await redis.get(keys.job('b'))).toBe(ready);
    expect(await redis.pttl(keys.job('b'))).toBe(-1);
    expect(
      without(await snapshot(redis, prefix), [keys.dead, keys.job('b'), keys.queue('high'), keys.signal()]),
    ).toEqual(without(before, [keys.dead, keys.job('b')]));
  });

  it('a duplicate entry of an id is requeued once; the other entry stays', async () => {
    await seedDead([{ id: 'a' }, { id: 'b' }]);
    await redis.lpush(keys.dead, 'a');
    const result = await requeue({ selection: { all: true } });
    expect(result).toMatchObject({ requeued: 2, duplicate: 1 });
    expect(await redis.lrange(keys.queue('normal'), 0, -1)).toEqual(['b', 'a']);
    expect(await redis.lrange(keys.dead, 0, -1)).toEqual(['a']);
  });

  it('two sweeps at once never move a job twice, and together they leave nothing behind', async () => {
    const all = ids(3000);
    await seedDead(all.map((id) => ({ id })));
    const [one, two] = await Promise.all([
      requeue({ selection: { all: true }, batchSize: 100 }, client()),
      requeue({ selection: { all: true }, batchSize: 100 }, client()),
    ]);
    const ready = await redis.lrange(keys.queue('normal'), 0, -1);
    expect(one.requeued + two.requeued).toBe(3000);
    expect(ready).toHaveLength(3000);
    expect(new Set(ready).size).toBe(3000);
    expect(await redis.llen(keys.dead)).toBe(0);
    // Each saw the other's moves (positions shifted under it) and looked again beyond what it had kept.
    expect(one.gone + two.gone).toBeGreaterThan(0);
  });

  it('a job that fails again during the sweep is not requeued a second time', async () => {
    const all = ids(2000);
    await seedDead(all.map((id) => ({ id })));
    const worker = client();
    const taken = new Map<string, number>();
    let sweeping = true;
    // A worker that fails every job at once: takes it from the ready list, writes it back as dead, LPUSHes it.
    const failing = (async () => {
      while (sweeping || (await worker.llen(keys.queue('normal'))) > 0) {
        const id = await worker.rpop(keys.queue('normal'));
        if (id === null) {
          await new Promise((r) => setTimeout(r, 1));
          continue;
        }
        taken.set(id, (taken.get(id) ?? 0) + 1);
        await worker
          .multi()
          .set(keys.job(id), deadJobDocument(id, { error: 'failed again' }))
          .lpush(keys.dead, id)
          .exec();
      }
    })();
    const result = await requeue({ selection: { all: true }, batchSize: 50 });
    sweeping = false;
    await failing;
    expect(result.examined).toBe(2000);
    expect(result.requeued).toBe(2000);
    expect(taken.size).toBe(2000);
    expect([...taken.values()].every((n) => n === 1)).toBe(true);
    expect(await redis.llen(keys.dead)).toBe(2000);
  });

  it('SeenIds remembers ids across growth', () => {
    const seen = new SeenIds();
    for (let i = 0; i < 20_000; i++) expect(seen.add(`id-${i}`)).toBe(true);
    for (let i = 0; i < 20_000; i++) expect(seen.add(`id-${i}`)).toBe(false);
    expect(seen.has('id-19999')).toBe(true);
    expect(seen.has('id-20000')).toBe(false);
    expect(seen.count).toBe(20_000);
  });
});

// ---------------------------------------------------------------------------------------------------
// backup and restore
// ---------------------------------------------------------------------------------------------------

const NOT_UTF8 = Buffer.from([0x7b, 0xff, 0xfe, 0x22, 0x00, 0x7d]);
const PYTHON_DOC = `{"id": "py", "name": "email", "description": "", "payload": {"name": "Jos\\u00e9 \\u2603", "ratio": 1.0}, "status": "failed", "priority": "low", "created_at": "2026-11-28T14:52:29.195893+00:00", "updated_at": "2026-11-28T14:52:29.195893+00:00", "attempts": 3, "max_retries": 3, "error": "smtp timeout", "routing_key": "gpu"}`;

async function seedMixed(): Promise<void> {
  await seedDead([
    { id: 'job-1' },
    { id: 'py', doc: PYTHON_DOC },
    { id: 'stub', doc: '{"error":"Job data not found (corrupted reference)","id":"stub"}' },
    { id: 'binary', doc: NOT_UTF8, ttl: 0 },
    { id: 'no-doc', doc: null },
    { id: 'job-2', doc: deadJobDocument('job-2', { priority: 'high' }) },
  ]);
}

function readLines(file: string): Array<Record<string, unknown>> {
  const raw = readFileSync(file);
  const text = (file.endsWith('.gz') ? gunzipSync(raw) : raw).toString('utf8');
  expect(text.endsWith('\n')).toBe(true);
  return text
    .slice(0, -1)
    .split('\n')
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

describe('dlq backup', () => {
  it('writes a header and every entry oldest first, documents exact (base64 when not UTF-8), changing nothing in Redis', async () => {
    await seedMixed();
    const before = await snapshot(redis, prefix);
    const file = join(scratch, `${prefix}plain.jsonl`);

    const result = await backupDeadLetters(redis, prefix, { out: file, pageSize: 4 });

    expect(await snapshot(redis, prefix)).toEqual(before);
    expect(result).toMatchObject({
      file,
      compressed: false,
      entries: 6,
      documents: 5,
      missing_documents: 1,
      interrupted: false,
    });
    const [header, ...entries] = readLines(file);
    expect(header).toEqual({
      format: 'bananas-dlq-backup',
      version: 1,
      created_at: result.created_at,
      prefix,
      dead_key: keys.dead,
      count: 6,
    });
    expect(entries.map((e) => e.id)).toEqual(['job-1', 'py', 'stub', 'binary', 'no-doc', 'job-2']);
    expect(entries[0]!.document).toBe(deadJobDocument('job-1'));
    expect(entries[1]!.document).toBe(PYTHON_DOC);
    expect(entries[3]).toEqual({
      id: 'binary',
      document: NOT_UTF8.toString('base64'),
      document_encoding: 'base64',
      ttl_ms: null,
    });
    expect(entries[4]).toEqual({ id: 'no-doc', document: null, ttl_ms: null });
    expect(entries[0]!.ttl_ms).toBeGreaterThan((WEEK - 60) * 1000);
    expect(result.bytes).toBe(readFileSync(file).length);
    expect(readdirSync(scratch).filter((f) => f.includes('.partial-'))).toEqual([]);
  });

  it('.gz compresses the same content; an existing file is refused unless --force', async () => {
    await seedMixed();
    const plain = join(scratch, `${prefix}b.jsonl`);
    const gz = `${plain}.gz`;
    await backupDeadLetters(redis, prefix, { out: plain });
    const result = await backupDeadLetters(redis, prefix, { out: gz });
    expect(result.compressed).toBe(true);
    expect(readFileSync(gz).subarray(0, 2)).toEqual(Buffer.from([0x1f, 0x8b]));
    const withoutTtl = (lines: Array<Record<string, unknown>>) =>
      lines.slice(1).map((l) => ({ ...l, ttl_ms: 0 }));
    expect(withoutTtl(readLines(gz))).toEqual(withoutTtl(readLines(plain)));

    writeFileSync(plain, 'precious');
    await expect(backupDeadLetters(redis, prefix, { out: plain })).rejects.toThrow(ConflictError);
    expect(readFileSync(plain, 'utf8')).toBe('precious');
    await backupDeadLetters(redis, prefix, { out: plain, force: true });
    expect(readLines(plain)).toHaveLength(7);
    await expect(
      backupDeadLetters(redis, prefix, { out: join(scratch, 'no-such-dir', 'x.jsonl') }),
    ).rejects.toThrow(/does not exist/);
  });

  it('an interrupted backup leaves no file behind', async () => {
    await seedDead(ids(50).map((id) => ({ id })));
    const file = join(scratch, `${prefix}interrupted.jsonl`);
    const controller = new AbortController();
    const result = await backupDeadLetters(redis, prefix, {
      out: file,
      pageSize: 10,
      signal: controller.signal,
      onProgress: (done) => done >= 20 && controller.abort(),
    });
    expect(result.interrupted).toBe(true);
    expect(existsSync(file)).toBe(false);
    expect(readdirSync(scratch).filter((f) => f.startsWith(prefix))).toEqual([]);
  });
});

describe('dlq restore', () => {
  it('--to dlq puts everything back as it was (without TTL) and is idempotent', async () => {
    await seedMixed();
    const original = await snapshot(redis, prefix);
    const file = join(scratch, `${prefix}r.jsonl.gz`);
    await backupDeadLetters(redis, prefix, { out: file });
    await redis.del(...Object.keys(original));

    const first = await restoreDeadLetters(redis, prefix, { in: file });
    expect(first).toMatchObject({
      entries: 6,
      restored: 5,
      skipped_existing: 0,
      skipped_missing_document: 1,
      invalid: 0,
    });
    expect(await redis.lrange(keys.dead, 0, -1)).toEqual(['job-2', 'binary', 'stub', 'py', 'job-1']);
    expect(await redis.getBuffer(keys.job('binary'))).toEqual(NOT_UTF8);
    expect(await redis.get(keys.job('py'))).toBe(PYTHON_DOC);
    // The id without a document is not restored (there is nothing to restore); the rest is as it was.
    const restored = await snapshot(redis, prefix);
    expect(Object.keys(restored)).toEqual(Object.keys(original));
    for (const key of Object.keys(restored)) {
      if (key !== keys.dead) expect(restored[key]!.value, key).toEqual(original[key]!.value);
      expect(restored[key]!.ttl, key).toBe(-1);
    }

    const second = await restoreDeadLetters(redis, prefix, { in: file });
    expect(second).toMatchObject({ restored: 0, skipped_existing: 5, skipped_missing_document: 1 });
    expect(await snapshot(redis, prefix)).toEqual(restored);
  });

  it('--to queue makes jobs ready (attempts reset), skips stubs and existing newer documents', async () => {
    await seedMixed();
    const file = join(scratch, `${prefix}q.jsonl`);
    await backupDeadLetters(redis, prefix, { out: file });
    await redis.del(keys.dead, keys.job('job-1'), keys.job('py'), keys.job('stub'), keys.job('binary'));
    const newer = deadJobDocument('job-2', { status: 'completed', error: '' });
    await redis.set(keys.job('job-2'), newer);
    const before = await snapshot(redis, prefix);
    const started = Date.now();

    const dry = await restoreDeadLetters(redis, prefix, { in: file, to: 'queue', dryRun: true });
    expect(await snapshot(redis, prefix)).toEqual(before);
    const result = await restoreDeadLetters(redis, prefix, { in: file, to: 'queue' });

    expect(result).toMatchObject({
      restored: 2,
      skipped_existing: 1,
      not_a_job: 2,
      skipped_missing_document: 1,
    });
    expect({ ...dry, dry_run: false, duration_ms: 0 }).toEqual({ ...result, duration_ms: 0 });
    expect(await redis.get(keys.job('job-2'))).toBe(newer);
    expect(await redis.lrange(keys.queue('normal'), 0, -1)).toEqual(['job-1']);
    expect(await redis.lrange(keys.queue('low', 'gpu'), 0, -1)).toEqual(['py']);
    await expectReady('job-1', started);
    await expectReady('py', started, 'low');
    expect(await redis.get(keys.job('py'))).toContain(
      '"payload":{"name": "Jos\\u00e9 \\u2603", "ratio": 1.0}',
    );
    expect(await redis.exists(keys.job('stub'), keys.job('binary'), keys.dead)).toBe(0);
  });

  it('refuses files that are not complete backups of this prefix, before changing anything', async () => {
    await seedDead(ids(3).map((id) => ({ id })));
    const file = join(scratch, `${prefix}src.jsonl`);
    await backupDeadLetters(redis, prefix, { out: file });
    const lines = readFileSync(file, 'utf8').split('\n');
    const write = (name: string, content: string) => {
      const path = join(scratch, `${prefix}${name}`);
      writeFileSync(path, content);
      return path;
    };
    const other = freshPrefix();
    const cases: Array<[string, RegExp]> = [
      [write('truncated.jsonl', lines.slice(0, 3).join('\n')), /header announces 3 entries but it holds 2/],
      [write('empty.jsonl', ''), /not a bananas dead-letter backup: the file is empty/],
      [write('ids.jsonl', 'job-1\njob-2\n'), /not a bananas dead-letter backup: its first line is not JSON/],
      [
        write('v2.jsonl', `${lines[0]!.replace('"version":1', '"version":2')}\n${lines.slice(1).join('\n')}`),
        /version 2 is not supported/,
      ],
      [join(scratch, 'missing.jsonl'), /no such file/],
    ];
    const before = await snapshot(redis, other);
    for (const [path, message] of cases) {
      await expect(
        restoreDeadLetters(redis, other, { in: path, allowOtherPrefix: true }),
        path,
      ).rejects.toThrow(message);
    }
    await expect(restoreDeadLetters(redis, other, { in: file })).rejects.toThrow(/is a backup of prefix/);
    expect(await snapshot(redis, other)).toEqual(before);

    // Invalid lines in a complete file are counted and skipped; the rest is restored.
    const header = JSON.parse(lines[0]!) as Record<string, unknown>;
    const mixed = write(
      'mixed.jsonl',
      [
        JSON.stringify({ ...header, count: 5 }),
        lines[1],
        '{"id":"*bad id*"',
        JSON.stringify({ id: '', document: 'x' }),
        lines[2],
        lines[3],
        '',
      ].join('\n'),
    );
    const result = await restoreDeadLetters(redis, other, { in: mixed, allowOtherPrefix: true });
    expect(result).toMatchObject({ entries: 5, restored: 3, invalid: 2 });
    expect(result.invalid_lines.map((l) => l.line)).toEqual([3, 4]);
    expect(await redis.llen(`${other}queue:dead`)).toBe(3);
    await redis.del(`${other}queue:dead`, ...ids(3).map((id) => `${other}job:${id}`));
  });
});

// ---------------------------------------------------------------------------------------------------
// clear
// ---------------------------------------------------------------------------------------------------

describe('dlq clear', () => {
  it('refuses without a backup and changes nothing', async () => {
    await seedDead(ids(3).map((id) => ({ id })));
    const before = await snapshot(redis, prefix);
    await expect(clearDeadLetters(redis, prefix, {})).rejects.toThrow(/without a backup/);
    await expect(clearDeadLetters(redis, prefix, { backup: 'x', noBackup: true })).rejects.toThrow(
      UsageError,
    );
    expect(await snapshot(redis, prefix)).toEqual(before);
  });

  it('removes exactly what it backed up; jobs dead-lettered or rewritten meanwhile, and results, stay', async () => {
    await seedMixed();
    await redis.hset(keys.result('job-1'), { status: 'failed', error: 'card declined' });
    // A duplicate entry of a job that was requeued: its document is a live job's and must survive.
    await redis.set(keys.job('live'), deadJobDocument('live', { status: 'pending', attempts: 0 }));
    await redis.rpush(keys.queue('normal'), 'live');
    await redis.lpush(keys.dead, 'live');
    await redis.set(`${prefix}other`, 'untouched');
    const before = await snapshot(redis, prefix);
    const file = join(scratch, `${prefix}clear.jsonl`);
    const lateDoc = deadJobDocument('late');
    const rewritten = deadJobDocument('job-2', { error: 'rewritten after the backup' });

    const dry = await clearDeadLetters(redis, prefix, { backup: file, dryRun: true });
    expect(existsSync(file)).toBe(false);
    expect(await snapshot(redis, prefix)).toEqual(before);
    expect(dry).toMatchObject({ removed: 7, documents_deleted: 5, documents_kept: 1, missing_documents: 1 });

    let injected = false;
    const result = await clearDeadLetters(redis, prefix, {
      backup: file,
      batchSize: 3,
      onProgress: (phase, done, total) => {
        // The backup is complete: a job is dead-lettered and another rewritten before anything is removed.
        if (phase === 'backup' && done === total && !injected) {
          injected = true;
          void redis.multi().set(keys.job('late'), lateDoc).lpush(keys.dead, 'late').exec();
          void redis.set(keys.job('job-2'), rewritten);
        }
      },
    });

    expect(injected).toBe(true);
    expect(result).toMatchObject({
      removed: 6,
      documents_deleted: 4,
      documents_kept: 1,
      missing_documents: 1,
      changed: 1,
      gone: 0,
      interrupted: false,
    });
    expect(result.backup).toMatchObject({ file, entries: 7 });
    expect(result.ids).toEqual(['job-1', 'py', 'stub', 'binary', 'no-doc', 'live']);
    expect(
      readLines(file)
        .slice(1)
        .map((e) => e.id),
    ).toEqual(['job-1', 'py', 'stub', 'binary', 'no-doc', 'job-2', 'live']);
    expect(await redis.lrange(keys.dead, 0, -1)).toEqual(['late', 'job-2']);
    expect(await redis.get(keys.job('late'))).toBe(lateDoc);
    expect(await redis.get(keys.job('job-2'))).toBe(rewritten);
    const after = await snapshot(redis, prefix);
    expect(without(after, [keys.dead, keys.job('late'), keys.job('job-2')])).toEqual(
      without(before, [
        keys.dead,
        keys.job('job-2'),
        ...['job-1', 'py', 'stub', 'binary'].map((id) => keys.job(id)),
      ]),
    );
    expect(after[keys.result('job-1')]).toEqual(before[keys.result('job-1')]);
    expect(after[keys.job('live')]).toEqual(before[keys.job('live')]);
  });

  it('--no-backup removes the entries present at the start, in batches', async () => {
    await seedDead([...ids(25).map((id) => ({ id })), { id: 'no-doc', doc: null }]);
    const before = await snapshot(redis, prefix);
    const result = await clearDeadLetters(redis, prefix, { noBackup: true, batchSize: 4 });
    expect(result).toMatchObject({ removed: 26, documents_deleted: 25, missing_documents: 1, backup: null });
    expect(result.ids[0]).toBe('job-00000');
    expect(await snapshot(redis, prefix)).toEqual({});
    expect(Object.keys(before)).toHaveLength(26);
  });
});
