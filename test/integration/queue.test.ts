/**
 * Integration tests of the queue core (src/core/queue.ts and its Lua scripts) against a real, private
 * redis-server. Every test uses a fresh key prefix and checks the raw Redis state with a separate client.
 */
import { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { decodeJob, encodeJob, type Job } from '../../src/core/codec.js';
import { DuplicateJobError, UsageError } from '../../src/core/errors.js';
import { normalizePriority, normalizeRoutingKey, PRIORITIES, type Priority } from '../../src/core/keys.js';
import {
  PREPARE_FROM_CHARS,
  Queue,
  secondsScore,
  type DequeuedEntry,
  type DequeueRequest,
  type EnqueueRequest,
  type FinishEntry,
} from '../../src/core/queue.js';
import { keysUnder } from '../helpers/cli.js';
import { freshPrefix, onCluster, rawClient, testRedisUrl, waitFor } from '../helpers/context.js';
import { SilencingProxy } from '../helpers/proxy.js';
import { loadVectors, renameKey, seedVectors, VECTOR_FILES } from '../helpers/seed.js';

let prefix: string;
let raw: Redis;
let queue: Queue;
let clients: Redis[];

function client(): Redis {
  const c = rawClient();
  clients.push(c);
  return c;
}

beforeEach(() => {
  clients = [];
  prefix = freshPrefix();
  raw = client();
  queue = new Queue(client(), { prefix });
});

afterEach(async () => {
  await Promise.all(clients.map((c) => c.quit().catch(() => c.disconnect())));
});

// ---------------------------------------------------------------------------------------------------
// Helpers that read raw Redis state
// ---------------------------------------------------------------------------------------------------

function k(suffix: string): string {
  return `${prefix}${suffix}`;
}

/** Everything stored under the prefix: type, value (strings as hex bytes) and whether it expires. */
async function snapshot(): Promise<Record<string, { type: string; expires: boolean; value: unknown }>> {
  const out: Record<string, { type: string; expires: boolean; value: unknown }> = {};
  for (const key of await keysUnder(raw, prefix)) {
    const type = await raw.type(key);
    const expires = (await raw.pttl(key)) >= 0;
    let value: unknown;
    if (type === 'string') value = (await raw.getBuffer(key))?.toString('hex');
    else if (type === 'list') value = await raw.lrange(key, 0, -1);
    else if (type === 'zset') value = await raw.zrange(key, 0, -1, 'WITHSCORES');
    else if (type === 'hash') value = await raw.hgetall(key);
    else value = `unexpected type ${type}`;
    out[key] = { type, expires, value };
  }
  return out;
}

async function list(key: string): Promise<string[]> {
  return raw.lrange(key, 0, -1);
}

async function ttlOf(key: string): Promise<number> {
  return raw.ttl(key);
}

function expectTtlNear(ttl: number, expected: number): void {
  expect(ttl).toBeGreaterThan(expected - 10);
  expect(ttl).toBeLessThanOrEqual(expected);
}

const ALL_LISTS = (): string[] => queue.listsServed(PRIORITIES, ['default', 'gpu']);

/** Dequeues until every list is empty. */
async function drain(lists: string[], workerId = 'w-drain', q: Queue = queue): Promise<DequeuedEntry[]> {
  const out: DequeuedEntry[] = [];
  for (;;) {
    const batch = await q.dequeue({ workerId, leaseMs: 60_000, max: 50, lists });
    if (batch.length === 0) return out;
    out.push(...batch);
  }
}

async function enqueueAndTake(
  name: string,
  options: { priority?: Priority; routingKey?: string; workerId?: string; leaseMs?: number } = {},
): Promise<{ job: Job; entry: DequeuedEntry }> {
  const job = await queue.enqueue(
    name,
    { n: 1 },
    { priority: options.priority, routingKey: options.routingKey },
  );
  const lists = [queue.keys.queue(job.priority, job.routingKey)];
  const [entry, ...rest] = await queue.dequeue({
    workerId: options.workerId ?? 'w1',
    leaseMs: options.leaseMs ?? 60_000,
    max: 1,
    lists,
  });
  expect(rest).toEqual([]);
  expect(entry?.id).toBe(job.id);
  return { job, entry: entry as DequeuedEntry };
}

function decoded(document: Buffer | string | undefined | null): Job {
  expect(document).toBeDefined();
  const result = decodeJob(document as Buffer | string);
  if (!result.ok) throw new Error(`document does not decode: ${result.reason}`);
  return result.job;
}

const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

// ---------------------------------------------------------------------------------------------------
// enqueue
// ---------------------------------------------------------------------------------------------------

describe('enqueue', () => {
  it('writes the document without TTL, LPUSHes the id on the default normal list and leaves one wake-up token', async () => {
    const job = await queue.enqueue('send_email', { to: 'a@b.c' });
    expect(job.id).toMatch(UUID_V4);

    const stored = await raw.get(k(`job:${job.id}`));
    expect(stored).toBe(encodeJob(job));
    expect(JSON.parse(stored as string)).toEqual({
      id: job.id,
      name: 'send_email',
      payload: { to: 'a@b.c' },
      status: 'pending',
      priority: 'normal',
      created_at: job.createdAt,
      updated_at: job.createdAt,
      attempts: 0,
      max_retries: 3,
      routing_key: 'default',
    });
    expect(job.createdAt).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    expect(await ttlOf(k(`job:${job.id}`))).toBe(-1);
    expect(await list(k('queue:normal'))).toEqual([job.id]);
    expect(await list(k('signal'))).toEqual(['1']);
    expect(await keysUnder(raw, prefix)).toEqual([k(`job:${job.id}`), k('queue:normal'), k('signal')].sort());

    // A second job: LPUSH (newest on the left) and still exactly one token.
    const second = await queue.enqueue('send_email', null);
    const high = await queue.enqueue('send_email', null, { priority: 'high' });
    expect(await list(k('queue:normal'))).toEqual([second.id, job.id]);
    expect(await list(k('queue:high'))).toEqual([high.id]);
    expect(await list(k('signal'))).toEqual(['1']);
    expect(JSON.parse((await raw.get(k(`job:${second.id}`))) as string).payload).toBeNull();
  });

  it('routes a routing key to <prefix>route:<rk>:queue:<p> and wakes that route only', async () => {
    const job = await queue.enqueue('render', { f: 1 }, { routingKey: 'gpu', priority: 'low' });
    expect(await list(k('route:gpu:queue:low'))).toEqual([job.id]);
    expect(await list(k('route:gpu:signal'))).toEqual(['1']);
    expect(JSON.parse((await raw.get(k(`job:${job.id}`))) as string)).toMatchObject({
      routing_key: 'gpu',
      priority: 'low',
    });
    expect(await raw.exists(k('queue:low'), k('signal'), k('route:default:queue:low'))).toBe(0);

    // An explicit `default` routing key is the default route.
    const dflt = await queue.enqueue('render', null, { routingKey: 'default' });
    expect(await list(k('queue:normal'))).toEqual([dflt.id]);
    expect(await raw.exists(k('route:default:queue:normal'))).toBe(0);
  });

  it('keeps a raw JSON payload byte for byte', async () => {
    const payloadJson = '{"big":12345678901234567890,"f":1.0,"s":"\\u00e9<&>","z":[]}';
    const job = await queue.enqueue('x', undefined, { payloadJson, description: 'd', maxRetries: 0 });
    const stored = (await raw.get(k(`job:${job.id}`))) as string;
    expect(stored).toContain(`"payload":${payloadJson},`);
    expect(decoded(stored)).toMatchObject({ payload: payloadJson, maxRetries: 0, description: 'd' });
  });

  it('refuses a duplicate custom id: DuplicateJobError, the existing document unchanged, nothing pushed', async () => {
    await queue.enqueue('first', { v: 1 }, { id: 'order-42' });
    const before = await snapshot();
    const docBefore = await raw.getBuffer(k('job:order-42'));

    const attempt = queue.enqueue('second', { v: 2 }, { id: 'order-42', priority: 'high' });
    await expect(attempt).rejects.toBeInstanceOf(DuplicateJobError);
    await expect(attempt).rejects.toMatchObject({ jobId: 'order-42', code: 'DUPLICATE_JOB' });
    await expect(queue.enqueue('third', null, { id: 'order-42', delayMs: 60_000 })).rejects.toBeInstanceOf(
      DuplicateJobError,
    );

    expect(await raw.getBuffer(k('job:order-42'))).toEqual(docBefore);
    expect(await list(k('queue:normal'))).toEqual(['order-42']);
    expect(await snapshot()).toEqual(before);
  });

  it('delayMs and runAt go to the scheduled set with a score in seconds (ms precision) and status scheduled', async () => {
    const now = new Date('2030-01-02T03:04:00.001Z');
    const { enqueued, duplicates } = await queue.enqueueBatch(
      [
        { name: 'later', delayMs: 5677 },
        { name: 'at', runAt: new Date('2030-01-02T03:05:00.250Z'), routingKey: 'gpu', priority: 'high' },
      ],
      now,
    );
    expect(duplicates).toEqual([]);
    const [later, at] = enqueued as [Job, Job];

    // Redis stores the double the script was given (it may print it with extra digits: compare numbers).
    expect(Number(await raw.zscore(k('queue:scheduled'), later.id))).toBe(1893553445.678);
    expect(Number(await raw.zscore(k('queue:scheduled'), at.id))).toBe(1893553500.25);
    expect(JSON.parse((await raw.get(k(`job:${later.id}`))) as string)).toMatchObject({
      status: 'scheduled',
      scheduled_for: '2030-01-02T03:04:05.678Z',
      created_at: '2030-01-02T03:04:00.001Z',
    });
    expect(JSON.parse((await raw.get(k(`job:${at.id}`))) as string)).toMatchObject({
      status: 'scheduled',
      scheduled_for: '2030-01-02T03:05:00.250Z',
      routing_key: 'gpu',
    });
    expect(await ttlOf(k(`job:${later.id}`))).toBe(-1);
    expect(await ttlOf(k(`job:${at.id}`))).toBe(-1);
    // Not on any ready list; both routes are woken so idle workers re-read the next due time.
    expect(await raw.exists(...ALL_LISTS())).toBe(0);
    expect(await list(k('signal'))).toEqual(['1']);
    expect(await list(k('route:gpu:signal'))).toEqual(['1']);

    // With the real clock through enqueue().
    const before = Date.now();
    const delayed = await queue.enqueue('later', null, { delayMs: 60_000 });
    const after = Date.now();
    const score = Number(await raw.zscore(k('queue:scheduled'), delayed.id));
    expect(score * 1000).toBeGreaterThanOrEqual(before + 60_000);
    expect(score * 1000).toBeLessThanOrEqual(after + 60_000);
    expect(secondsScore(new Date(delayed.scheduledFor as string))).toBe(String(score));
  });

  it('a runAt in the past or delayMs 0 goes straight to the ready list as pending', async () => {
    const past = await queue.enqueue('p', null, { runAt: new Date(Date.now() - 1000) });
    const zero = await queue.enqueue('z', null, { delayMs: 0 });
    expect(await list(k('queue:normal'))).toEqual([zero.id, past.id]);
    expect(await raw.exists(k('queue:scheduled'))).toBe(0);
    for (const job of [past, zero]) {
      const doc = JSON.parse((await raw.get(k(`job:${job.id}`))) as string) as Record<string, unknown>;
      expect(doc.status).toBe('pending');
      expect(doc).not.toHaveProperty('scheduled_for');
    }
  });

  it('rejects bad input with UsageError and writes nothing', async () => {
    const bad: EnqueueRequest[] = [
      { name: 'x', priority: 'urgent' as Priority },
      { name: 'x', routingKey: 'a b' },
      { name: 'x', routingKey: '' },
      { name: 'x', routingKey: 'r'.repeat(65) },
      { name: 'x', maxRetries: -1 },
      { name: 'x', maxRetries: 1.5 },
      { name: 'x', payloadJson: 'not json' },
      { name: 'x', payloadJson: '{"a":1} {"b":2}' },
      { name: 'x', id: 'a b' },
      { name: 'x', id: '' },
      { name: 'x', id: 'tab\there' },
      { name: '' },
      { name: '   ' },
      { name: 'x', delayMs: -5 },
      { name: 'x', runAt: new Date(Number.NaN) },
    ];
    for (const request of bad) {
      const { name, ...options } = request;
      await expect(queue.enqueue(name, undefined, options), JSON.stringify(request)).rejects.toBeInstanceOf(
        UsageError,
      );
    }
    // A batch with one bad request writes none of its good ones either.
    await expect(queue.enqueueBatch([{ name: 'good' }, { name: 'x', id: 'a b' }])).rejects.toBeInstanceOf(
      UsageError,
    );
    expect(await keysUnder(raw, prefix)).toEqual([]);
  });

  it('a large enqueueBatch (calls of 200 jobs, encoded as bytes) stores every document byte for byte and refuses a duplicate in the middle', async () => {
    await queue.enqueue('old', { v: 0 }, { id: 'dup-in-chunk-2' });
    const text = `${'é'.repeat(300)} ✓ 🍌 "quoted" \\ ${'x'.repeat(700)}`;
    const requests = Array.from({ length: 450 }, (_, i) => ({
      name: 'big',
      id: i === 321 ? 'dup-in-chunk-2' : `big-${i}`,
      payload: { i, text },
      ...(i === 449 ? { delayMs: 60_000 } : {}),
    }));
    // On a connection of its own, the first call goes out as EVAL with the encoded arguments.
    const { enqueued, duplicates } = await new Queue(client(), { prefix }).enqueueBatch(requests);
    expect(duplicates).toEqual(['dup-in-chunk-2']);
    expect(enqueued).toHaveLength(449);
    // Each call (200, 200 and 50 jobs) has enough document text to be sent as encoded bytes.
    expect(encodeJob(enqueued[0]!).length * 50).toBeGreaterThan(PREPARE_FROM_CHARS);
    for (const job of enqueued) expect(await raw.get(k(`job:${job.id}`))).toBe(encodeJob(job));
    expect(decoded(await raw.get(k('job:big-7'))).payload).toEqual(JSON.stringify({ i: 7, text }));
    expect(decoded(await raw.get(k('job:dup-in-chunk-2'))).name).toBe('old');
    const ready = await list(k('queue:normal'));
    expect(ready).toHaveLength(449); // the earlier job and 448 new ones; the delayed one is scheduled
    expect(ready.slice(-3)).toEqual(['big-1', 'big-0', 'dup-in-chunk-2']); // oldest at the right
    expect(await raw.zrange(k('queue:scheduled'), 0, -1)).toEqual(['big-449']);
  });

  it('enqueueBatch with a duplicate in the middle enqueues the others', async () => {
    await queue.enqueue('old', { v: 0 }, { id: 'dup' });
    const docBefore = await raw.get(k('job:dup'));
    const result = await queue.enqueueBatch([
      { name: 'a', id: 'a' },
      { name: 'new', id: 'dup', payload: { v: 1 } },
      { name: 'c', id: 'c', routingKey: 'gpu' },
    ]);
    expect(result.enqueued.map((j) => j.id)).toEqual(['a', 'c']);
    expect(result.duplicates).toEqual(['dup']);
    expect(await list(k('queue:normal'))).toEqual(['a', 'dup']);
    expect(await list(k('route:gpu:queue:normal'))).toEqual(['c']);
    expect(await raw.get(k('job:dup'))).toBe(docBefore);
    expect(decoded(await raw.get(k('job:a'))).name).toBe('a');
    expect(decoded(await raw.get(k('job:c'))).name).toBe('c');
  });
});

// ---------------------------------------------------------------------------------------------------
// dequeue
// ---------------------------------------------------------------------------------------------------

describe('dequeue', () => {
  it('serves strict priority order, FIFO within a priority', async () => {
    const low1 = await queue.enqueue('j', null, { priority: 'low' });
    const low2 = await queue.enqueue('j', null, { priority: 'low' });
    const normal = await queue.enqueue('j', null);
    const high = await queue.enqueue('j', null, { priority: 'high' });
    const lists = queue.listsServed(PRIORITIES, ['default']);

    const first = await queue.dequeue({ workerId: 'w1', leaseMs: 60_000, max: 1, lists });
    expect(first.map((e) => e.id)).toEqual([high.id]);
    expect(first[0]?.sourceList).toBe(k('queue:high'));

    const rest = await queue.dequeue({ workerId: 'w1', leaseMs: 60_000, max: 10, lists });
    expect(rest.map((e) => e.id)).toEqual([normal.id, low1.id, low2.id]);
    expect(rest.map((e) => e.sourceList)).toEqual([k('queue:normal'), k('queue:low'), k('queue:low')]);
    expect(await queue.dequeue({ workerId: 'w1', leaseMs: 60_000, max: 10, lists })).toEqual([]);
  });

  it('respects the order of `lists` across routing keys (and drains the legacy route:default lists)', async () => {
    const dHigh = await queue.enqueue('j', null, { priority: 'high' });
    const gLow = await queue.enqueue('j', null, { priority: 'low', routingKey: 'gpu' });
    const gHigh = await queue.enqueue('j', null, { priority: 'high', routingKey: 'gpu' });
    // A job an old build wrote on route:default:queue:high.
    await raw.set(k('job:legacy'), '{"id":"legacy","name":"j","payload":null,"priority":"high"}');
    await raw.lpush(k('route:default:queue:high'), 'legacy');

    const lists = queue.listsServed(PRIORITIES, ['gpu', 'default']);
    expect(lists).toEqual([
      k('route:gpu:queue:high'),
      k('queue:high'),
      k('route:default:queue:high'),
      k('route:gpu:queue:normal'),
      k('queue:normal'),
      k('route:default:queue:normal'),
      k('route:gpu:queue:low'),
      k('queue:low'),
      k('route:default:queue:low'),
    ]);
    const taken = await queue.dequeue({ workerId: 'w1', leaseMs: 60_000, max: 10, lists });
    expect(taken.map((e) => e.id)).toEqual([gHigh.id, dHigh.id, 'legacy', gLow.id]);
    expect(taken.map((e) => e.sourceList)).toEqual([
      k('route:gpu:queue:high'),
      k('queue:high'),
      k('route:default:queue:high'),
      k('route:gpu:queue:low'),
    ]);

    // A worker that serves only the default route never takes gpu jobs.
    const other = await queue.enqueue('j', null, { priority: 'high', routingKey: 'gpu' });
    const defaultOnly = queue.listsServed(PRIORITIES, ['default']);
    expect(await queue.dequeue({ workerId: 'w2', leaseMs: 60_000, max: 10, lists: defaultOnly })).toEqual([]);
    expect(await list(k('route:gpu:queue:high'))).toEqual([other.id]);
  });

  it('records a lease (deadline and owner) and keeps the id in <prefix>queue:processing', async () => {
    const job = await queue.enqueue('j', { a: 1 });
    const stored = await raw.getBuffer(k(`job:${job.id}`));
    const before = Date.now();
    const [entry] = await queue.dequeue({
      workerId: 'worker-7',
      leaseMs: 45_000,
      max: 5,
      lists: ALL_LISTS(),
    });
    const after = Date.now();

    expect(entry?.id).toBe(job.id);
    expect(entry?.document).toEqual(stored);
    expect(await list(k('queue:processing'))).toEqual([job.id]);
    const deadline = Number(await raw.zscore(k('processing:leases'), job.id));
    expect(deadline).toBeGreaterThanOrEqual(before + 45_000);
    expect(deadline).toBeLessThanOrEqual(after + 45_000);
    expect(await raw.hgetall(k('processing:owners'))).toEqual({ [job.id]: 'worker-7' });
    expect(await raw.exists(k('queue:normal'))).toBe(0);
    // The document is not rewritten by a dequeue.
    expect(await raw.getBuffer(k(`job:${job.id}`))).toEqual(stored);
    expect(await ttlOf(k(`job:${job.id}`))).toBe(-1);
  });

  it('indexes the lease set and owners hash once 16 jobs are in flight: same entries, no extra member', async () => {
    const { enqueued } = await queue.enqueueBatch(
      Array.from({ length: 40 }, (_, i) => ({ name: 'j', payload: { i } })),
    );
    const lists = ALL_LISTS();
    // Redis before 7 names the compact encoding `ziplist`.
    const encodings = async () =>
      [
        await raw.object('ENCODING', k('processing:leases')),
        await raw.object('ENCODING', k('processing:owners')),
      ].map((encoding) => (encoding === 'ziplist' ? 'listpack' : encoding));
    // Up to 15 jobs in flight: the compact encoding stays (it is the cheaper one at that size).
    await queue.dequeue({ workerId: 'w-a', leaseMs: 60_000, max: 10, lists });
    await queue.dequeue({ workerId: 'w-b', leaseMs: 60_000, max: 5, lists });
    expect(await raw.zcard(k('processing:leases'))).toBe(15);
    expect(await encodings()).toEqual(['listpack', 'listpack']);
    // The call that brings the count to 16 indexes both.
    await queue.dequeue({ workerId: 'w-a', leaseMs: 60_000, max: 1, lists });
    expect(await encodings()).toEqual(['skiplist', 'hashtable']);
    await queue.dequeue({ workerId: 'w-b', leaseMs: 60_000, max: 2, lists });

    const taken = enqueued.slice(0, 18).map((job) => job.id);
    expect((await raw.zrange(k('processing:leases'), 0, -1)).sort()).toEqual([...taken].sort());
    const owners = await raw.hgetall(k('processing:owners'));
    expect(Object.keys(owners).sort()).toEqual([...taken].sort());
    expect(new Set(Object.values(owners))).toEqual(new Set(['w-a', 'w-b']));
    expect(await list(k('queue:processing'))).toHaveLength(18);

    // Further calls (the key already indexed) leave the entries exact too; settling works as before.
    const more = await queue.dequeue({ workerId: 'w-a', leaseMs: 60_000, max: 22, lists });
    expect(more).toHaveLength(22);
    expect(await raw.zcard(k('processing:leases'))).toBe(40);
    expect(await raw.hlen(k('processing:owners'))).toBe(40);
    const applied = await queue.finish(
      'w-a',
      more.map((entry) => ({ id: entry.id, action: 'release' as const, target: entry.sourceList })),
    );
    expect(applied.every(Boolean)).toBe(true);
    expect(await raw.zcard(k('processing:leases'))).toBe(18);
    expect(await raw.hlen(k('processing:owners'))).toBe(18);
  });

  it('leaves an existing lease-set member or owner field named like its indexing member alone', async () => {
    // Not a job id bananas would accept (it has spaces); another writer could still have put it there.
    const odd = `bananas: index this key (a member longer than a listpack takes) ${'.'.repeat(64)}`;
    await raw.zadd(k('processing:leases'), 123, odd);
    await raw.hset(k('processing:owners'), odd, 'someone');
    await queue.enqueueBatch(Array.from({ length: 20 }, (_, i) => ({ name: 'j', payload: { i } })));
    expect(
      await queue.dequeue({ workerId: 'w1', leaseMs: 60_000, max: 20, lists: ALL_LISTS() }),
    ).toHaveLength(20);
    expect(await raw.zscore(k('processing:leases'), odd)).toBe('123');
    expect(await raw.hget(k('processing:owners'), odd)).toBe('someone');
    expect(await raw.zcard(k('processing:leases'))).toBe(21);
  });

  it('dead-letters an id whose document is missing, with the original stub (TTL 7 days)', async () => {
    const real = await queue.enqueue('j', null);
    await raw.rpush(k('queue:normal'), 'ghost'); // oldest: comes out first
    expect(await list(k('queue:normal'))).toEqual([real.id, 'ghost']);

    const taken = await queue.dequeue({ workerId: 'w1', leaseMs: 60_000, max: 1, lists: ALL_LISTS() });
    // The missing one does not count against `max`: the real job comes in the same call.
    expect(taken).toHaveLength(2);
    expect(taken[0]).toEqual({ id: 'ghost', sourceList: k('queue:normal') });
    expect(taken[0]).not.toHaveProperty('document');
    expect(taken[1]?.id).toBe(real.id);

    expect(await list(k('queue:dead'))).toEqual(['ghost']);
    const stub = (await raw.get(k('job:ghost'))) as string;
    expect(JSON.parse(stub)).toEqual({ error: 'Job data not found (corrupted reference)', id: 'ghost' });
    expect(decodeJob(stub)).toMatchObject({ ok: false, kind: 'stub', stub: { id: 'ghost' } });
    expectTtlNear(await ttlOf(k('job:ghost')), 7 * 24 * 3600);
    expect(await list(k('queue:processing'))).toEqual([real.id]);
    expect(await raw.zscore(k('processing:leases'), 'ghost')).toBeNull();
    expect(await raw.hget(k('processing:owners'), 'ghost')).toBeNull();
  });

  it('with a jobNames filter takes only matching jobs and leaves the others in place, in order', async () => {
    const a = await queue.enqueue('x', null);
    const b = await queue.enqueue('y', null);
    const c = await queue.enqueue('x', null);
    const d = await queue.enqueue('y', null);
    const lists = ALL_LISTS();

    const ys = await queue.dequeue({ workerId: 'wy', leaseMs: 60_000, max: 10, lists, jobNames: ['y'] });
    expect(ys.map((e) => e.id)).toEqual([b.id, d.id]);
    expect(await list(k('queue:normal'))).toEqual([c.id, a.id]);
    expect(await list(k('queue:processing'))).toEqual([d.id, b.id]);
    expect(await raw.hgetall(k('processing:owners'))).toEqual({ [b.id]: 'wy', [d.id]: 'wy' });
    expect(await raw.zscore(k('processing:leases'), a.id)).toBeNull();

    // Nothing matches: nothing moves.
    expect(await queue.dequeue({ workerId: 'wz', leaseMs: 60_000, max: 10, lists, jobNames: ['z'] })).toEqual(
      [],
    );
    expect(await list(k('queue:normal'))).toEqual([c.id, a.id]);

    // The others are still served, oldest first.
    const rest = await queue.dequeue({ workerId: 'w', leaseMs: 60_000, max: 10, lists });
    expect(rest.map((e) => e.id)).toEqual([a.id, c.id]);
  });

  it('with a jobNames filter examines only the `lookahead` oldest entries; unreadable documents are taken', async () => {
    const a = await queue.enqueue('x', null);
    const b = await queue.enqueue('y', null);
    const c = await queue.enqueue('x', null);
    const d = await queue.enqueue('y', null);
    const lists = ALL_LISTS();
    const one = await queue.dequeue({
      workerId: 'w',
      leaseMs: 60_000,
      max: 10,
      lists,
      jobNames: ['y'],
      lookahead: 2,
    });
    expect(one.map((e) => e.id)).toEqual([b.id]);
    expect(await list(k('queue:normal'))).toEqual([d.id, c.id, a.id]);

    // A corrupt document and a missing one are taken by any filtered worker (they are dead-lettered).
    await raw.set(k('job:bad'), 'not json');
    await raw.rpush(k('queue:normal'), 'bad', 'gone');
    const taken = await queue.dequeue({
      workerId: 'w',
      leaseMs: 60_000,
      max: 10,
      lists,
      jobNames: ['nothing'],
    });
    expect(taken.map((e) => [e.id, e.document?.toString()])).toEqual([
      ['gone', undefined],
      ['bad', 'not json'],
    ]);
    expect(await list(k('queue:normal'))).toEqual([d.id, c.id, a.id]);
    expect(await list(k('queue:dead'))).toEqual(['gone']);
  });

  /** A dequeue of up to 10 jobs (with `jobNames`, if given), and the ids it reports as duplicates. */
  async function dequeueWithDuplicates(jobNames?: string[]) {
    const duplicates: string[] = [];
    const taken = await queue.dequeue({
      workerId: 'w',
      leaseMs: 60_000,
      max: 10,
      lists: ALL_LISTS(),
      ...(jobNames ? { jobNames } : {}),
      onDuplicate: (id) => duplicates.push(id),
    });
    return { taken, duplicates };
  }

  it('takes an id entered twice in a ready list once: the second entry is removed and reported', async () => {
    const a = await queue.enqueue('x', null);
    const b = await queue.enqueue('x', null);
    await raw.lpush(k('queue:normal'), a.id); // list, oldest first: a, b, a
    await raw.lpush(k('queue:normal'), 'gone', 'gone'); // no document, entered twice: dead-lettered once
    const { taken, duplicates } = await dequeueWithDuplicates();

    expect(taken.map((e) => e.id)).toEqual([a.id, b.id, 'gone']);
    expect(duplicates).toEqual([a.id, 'gone']);
    expect(await raw.exists(k('queue:normal'))).toBe(0);
    expect(await list(k('queue:processing'))).toEqual([b.id, a.id]);
    expect(await list(k('queue:dead'))).toEqual(['gone']);
    expect(await raw.zcard(k('processing:leases'))).toBe(2);
  });

  it('with a jobNames filter also takes an id entered twice once, removing the second entry', async () => {
    const a = await queue.enqueue('x', null);
    const b = await queue.enqueue('y', null);
    await raw.lpush(k('queue:normal'), a.id, b.id); // oldest first: a, b, a, b
    const { taken, duplicates } = await dequeueWithDuplicates(['x']);

    expect(taken.map((e) => e.id)).toEqual([a.id]);
    expect(duplicates).toEqual([a.id]);
    expect(await list(k('queue:normal'))).toEqual([b.id, b.id]); // not taken: both entries stay
    expect(await list(k('queue:processing'))).toEqual([a.id]);
  });

  // A plain client through a proxy to one server (a cluster client connects to each node by itself).
  it.skipIf(onCluster())(
    'counts a lease from when the call is written to Redis, not from when it was made',
    async () => {
      const job = await queue.enqueue('x', null);
      const upstream = new URL(testRedisUrl());
      const proxy = await SilencingProxy.start(upstream.hostname, Number(upstream.port));
      // The connection's handshake goes unanswered: ioredis keeps the calls until it is ready (as after a
      // reconnect), and writes them then.
      proxy.hold();
      const late = new Redis(proxy.port, '127.0.0.1', { maxRetriesPerRequest: null });
      clients.push(late);
      try {
        const pending = queue.waitThenDequeue(
          { connection: late, signals: [queue.keys.signal('default')], timeoutMs: 10 },
          { workerId: 'w', leaseMs: 30_000, max: 1, lists: ALL_LISTS() },
        );
        await new Promise((r) => setTimeout(r, 1500));
        const releasedAt = Date.now();
        proxy.release();
        const { entries } = await pending;

        expect(entries.map((e) => e.id)).toEqual([job.id]);
        const deadline = Number(await raw.zscore(k('processing:leases'), job.id));
        expect(deadline).toBeGreaterThanOrEqual(releasedAt + 10 + 30_000);
        expect(deadline).toBeLessThanOrEqual(Date.now() + 10 + 30_000);
      } finally {
        late.disconnect();
        await proxy.close();
      }
    },
  );

  it('returns the stored document bytes exactly, including invalid UTF-8', async () => {
    const bytes = Buffer.concat([
      Buffer.from('{"id":"bin","name":"x","payload":"'),
      Buffer.from([0xff, 0xfe, 0xc3, 0x28, 0x00]),
      Buffer.from('"}'),
    ]);
    await raw.set(k('job:bin'), bytes);
    const unicode =
      '{"id":"u","name":"send_email","payload":{"name":"José ☃ 😀","html":"\\u003cb\\u003e","n":1.0}}';
    await raw.set(k('job:u'), unicode);
    await raw.lpush(k('queue:high'), 'bin', 'u');

    const taken = await queue.dequeue({ workerId: 'w', leaseMs: 60_000, max: 10, lists: ALL_LISTS() });
    expect(taken.map((e) => e.id)).toEqual(['bin', 'u']);
    expect(Buffer.compare(taken[0]?.document as Buffer, bytes)).toBe(0);
    expect(decodeJob(taken[0]?.document as Buffer)).toMatchObject({ ok: false, kind: 'invalid-json' });
    expect(Buffer.compare(taken[1]?.document as Buffer, Buffer.from(unicode, 'utf8'))).toBe(0);
    expect(decoded(taken[1]?.document).payload).toBe('{"name":"José ☃ 😀","html":"\\u003cb\\u003e","n":1.0}');
  });
});

describe('waitThenDequeue', () => {
  const request = (): DequeueRequest => ({ workerId: 'w-wait', leaseMs: 30_000, max: 5, lists: ALL_LISTS() });

  // CLIENT LIST of the one server the waiting connection is on.
  it.skipIf(onCluster())(
    'waits on its own connection and takes a job in the same round trip as the signal that woke it',
    async () => {
      const waiter = client();
      const started = Date.now();
      const pending = queue.waitThenDequeue(
        { connection: waiter, signals: [queue.keys.signal('default')], timeoutMs: 10_000 },
        request(),
      );
      const blocked = async (): Promise<string | undefined> =>
        String(await raw.client('LIST'))
          .split('\n')
          .find((line) => line.includes('cmd=blpop'));
      await waitFor(async () => (await blocked()) !== undefined);
      // The dequeue is at Redis already, unread behind the blocked BLPOP: it runs the moment the BLPOP returns.
      expect(Number(/ qbuf=(\d+)/.exec((await blocked())!)?.[1])).toBeGreaterThan(0);
      const job = await queue.enqueue('j', { a: 1 }); // its document, its list entry and the wake-up token
      const { entries, woken, waitError } = await pending;

      expect(woken).toBe(true);
      expect(waitError).toBeUndefined();
      expect(entries.map((e) => e.id)).toEqual([job.id]);
      expect(Date.now() - started).toBeLessThan(5_000); // woken, not timed out
      // The token was taken by the wait; the job is leased to the caller.
      expect(await raw.exists(k('signal'))).toBe(0);
      expect(await raw.hget(k('processing:owners'), job.id)).toBe('w-wait');
    },
  );

  it('after a wait without a signal still dequeues (jobs of producers that send none), with the lease counted from its end', async () => {
    // As an original producer writes it: a document and a list entry, no wake-up token.
    await raw.set(k('job:legacy-1'), '{"id":"legacy-1","name":"j","payload":null,"priority":"normal"}');
    await raw.lpush(k('queue:normal'), 'legacy-1');
    const before = Date.now();
    const { entries, woken } = await queue.waitThenDequeue(
      { connection: client(), signals: [queue.keys.signal('default')], timeoutMs: 300 },
      request(),
    );
    const after = Date.now();

    expect(woken).toBe(false);
    expect(after - before).toBeGreaterThanOrEqual(250);
    expect(entries.map((e) => e.id)).toEqual(['legacy-1']);
    const deadline = Number(await raw.zscore(k('processing:leases'), 'legacy-1'));
    expect(deadline).toBeGreaterThanOrEqual(before + 300 + 30_000);
    expect(deadline).toBeLessThanOrEqual(after + 300 + 30_000);
  });

  it('a failed wait does not lose the jobs the dequeue behind it took: they come back with the error', async () => {
    const job = await queue.enqueue('j', null);
    await raw.del(k('signal'));
    // A signal key holding another kind of value: BLPOP fails with WRONGTYPE, the dequeue runs anyway.
    await raw.set(k('signal'), 'not a list');
    const { entries, woken, waitError } = await queue.waitThenDequeue(
      { connection: client(), signals: [queue.keys.signal('default')], timeoutMs: 5_000 },
      request(),
    );

    expect(woken).toBe(false);
    expect(String(waitError)).toContain('WRONGTYPE');
    expect(entries.map((e) => e.id)).toEqual([job.id]);
    expect(await raw.hget(k('processing:owners'), job.id)).toBe('w-wait');
  });
});

// ---------------------------------------------------------------------------------------------------
// finish
// ---------------------------------------------------------------------------------------------------

describe('finish', () => {
  const NOW = new Date('2031-05-06T07:08:09.123Z');
  const MINUTE = Math.floor(NOW.getTime() / 60_000);

  async function subscribe(channel: string): Promise<string[]> {
    const sub = client();
    const messages: string[] = [];
    sub.on('message', (ch: string, message: string) => {
      if (ch === channel) messages.push(message);
    });
    await sub.subscribe(channel);
    return messages;
  }

  it('complete: rewrites the document with TTL 24 h, clears the lease, writes and publishes the result', async () => {
    const { job } = await enqueueAndTake('send_email', { workerId: 'w1' });
    const messages = await subscribe(k(`result:notify:${job.id}`));
    const done = encodeJob({ ...job, status: 'completed', updatedAt: NOW.toISOString() });

    const applied = await queue.finish(
      'w1',
      [
        {
          id: job.id,
          action: 'complete',
          document: done,
          documentTtlSeconds: queue.ttl.completedSeconds,
          result: { status: 'completed', resultJson: '{"sent":true}', durationMs: 12.4 },
        },
      ],
      NOW,
    );
    expect(applied).toEqual([true]);

    expect(await raw.get(k(`job:${job.id}`))).toBe(done);
    expectTtlNear(await ttlOf(k(`job:${job.id}`)), 86_400);
    expect(await list(k('queue:processing'))).toEqual([]);
    expect(await raw.zscore(k('processing:leases'), job.id)).toBeNull();
    expect(await raw.hget(k('processing:owners'), job.id)).toBeNull();
    expect(await raw.hgetall(k(`result:${job.id}`))).toEqual({
      status: 'completed',
      completed_at: '2031-05-06T07:08:09.123Z',
      duration_ms: '12',
      result: '{"sent":true}',
    });
    expectTtlNear(await ttlOf(k(`result:${job.id}`)), 3600);
    await waitFor(() => messages.length > 0, 5000, 'result notification');
    expect(messages).toEqual(['completed']);
    expect(await raw.hgetall(k('stats'))).toEqual({ completed: '1' });
    expect(await raw.hgetall(k(`stats:minute:${MINUTE}`))).toEqual({ completed: '1' });
    expectTtlNear(await ttlOf(k(`stats:minute:${MINUTE}`)), 7200);
    // Nothing queued anywhere.
    expect(await raw.exists(...ALL_LISTS(), k('queue:dead'), k('queue:scheduled'))).toBe(0);
  });

  it('retry: ZADDs the scheduled set with the score in seconds and rewrites the document without TTL', async () => {
    const { job } = await enqueueAndTake('flaky', { workerId: 'w1', routingKey: 'gpu' });
    const runAt = new Date(NOW.getTime() + 2_500);
    const retried = encodeJob({
      ...job,
      attempts: 1,
      error: 'boom',
      status: 'pending',
      scheduledFor: runAt.toISOString(),
    });
    await raw.expire(k(`job:${job.id}`), 1000); // the rewrite must drop any TTL
    await raw.del(k('route:gpu:signal'));

    const applied = await queue.finish(
      'w1',
      [{ id: job.id, action: 'retry', document: retried, runAt, target: queue.keys.signal('gpu') }],
      NOW,
    );
    expect(applied).toEqual([true]);
    const [member, score] = await raw.zrange(k('queue:scheduled'), 0, -1, 'WITHSCORES');
    expect(member).toBe(job.id);
    expect(Number(score)).toBe(runAt.getTime() / 1000); // 1935817691.623 (Redis 7.0 prints …6229999)
    expect(await raw.get(k(`job:${job.id}`))).toBe(retried);
    expect(await ttlOf(k(`job:${job.id}`))).toBe(-1);
    expect(await list(k('queue:processing'))).toEqual([]);
    expect(await raw.zcard(k('processing:leases'))).toBe(0);
    expect(await raw.hlen(k('processing:owners'))).toBe(0);
    expect(await list(k('route:gpu:signal'))).toEqual(['1']);
    expect(await raw.exists(k(`result:${job.id}`))).toBe(0);
    expect(await raw.hgetall(k('stats'))).toEqual({ retried: '1' });
    expect(await raw.exists(...ALL_LISTS(), k('queue:dead'))).toBe(0);
  });

  it('dead: LPUSHes the dead-letter list, document TTL 7 days, failed result with the error (TTL 24 h)', async () => {
    await raw.lpush(k('queue:dead'), 'older-dead');
    const { job } = await enqueueAndTake('charge', { workerId: 'w1' });
    const messages = await subscribe(k(`result:notify:${job.id}`));
    const failed = encodeJob({ ...job, status: 'failed', attempts: 3, error: 'card declined' });

    const applied = await queue.finish(
      'w1',
      [
        {
          id: job.id,
          action: 'dead',
          document: failed,
          documentTtlSeconds: queue.ttl.failedSeconds,
          result: { status: 'failed', error: 'card declined', durationMs: 3 },
        },
      ],
      NOW,
    );
    expect(applied).toEqual([true]);
    expect(await list(k('queue:dead'))).toEqual([job.id, 'older-dead']);
    expect(await raw.get(k(`job:${job.id}`))).toBe(failed);
    expectTtlNear(await ttlOf(k(`job:${job.id}`)), 604_800);
    expect(await raw.hgetall(k(`result:${job.id}`))).toEqual({
      status: 'failed',
      completed_at: '2031-05-06T07:08:09.123Z',
      duration_ms: '3',
      error: 'card declined',
    });
    expectTtlNear(await ttlOf(k(`result:${job.id}`)), 86_400);
    await waitFor(() => messages.length > 0, 5000, 'result notification');
    expect(messages).toEqual(['failed']);
    expect(await list(k('queue:processing'))).toEqual([]);
    expect(await raw.zcard(k('processing:leases'))).toBe(0);
    expect(await raw.hlen(k('processing:owners'))).toBe(0);
    expect(await raw.hgetall(k('stats'))).toEqual({ failed: '1' });
  });

  it("'dead' without a document leaves the stored bytes untouched", async () => {
    const bytes = Buffer.from([0x7b, 0xff, 0x00, 0x22, 0x7d]);
    await raw.set(k('job:corrupt'), bytes);
    await raw.lpush(k('queue:normal'), 'corrupt');
    const [entry] = await queue.dequeue({ workerId: 'w1', leaseMs: 60_000, max: 1, lists: ALL_LISTS() });
    expect(entry?.id).toBe('corrupt');

    expect(await queue.finish('w1', [{ id: 'corrupt', action: 'dead' }], NOW)).toEqual([true]);
    expect(Buffer.compare((await raw.getBuffer(k('job:corrupt'))) as Buffer, bytes)).toBe(0);
    expect(await list(k('queue:dead'))).toEqual(['corrupt']);
    expect(await list(k('queue:processing'))).toEqual([]);
    expect(await raw.exists(k('result:corrupt'))).toBe(0);
  });

  it('release: RPUSHes the id back on the given list so it is next out; the document is untouched', async () => {
    const a = await queue.enqueue('j', null);
    const b = await queue.enqueue('j', null);
    const [entry] = await queue.dequeue({ workerId: 'w1', leaseMs: 60_000, max: 1, lists: ALL_LISTS() });
    expect(entry?.id).toBe(a.id);
    const docBefore = await raw.getBuffer(k(`job:${a.id}`));

    const applied = await queue.finish(
      'w1',
      [{ id: a.id, action: 'release', target: entry?.sourceList }],
      NOW,
    );
    expect(applied).toEqual([true]);
    expect(await list(k('queue:normal'))).toEqual([b.id, a.id]);
    expect(await raw.getBuffer(k(`job:${a.id}`))).toEqual(docBefore);
    expect(await ttlOf(k(`job:${a.id}`))).toBe(-1);
    expect(await list(k('queue:processing'))).toEqual([]);
    expect(await raw.zcard(k('processing:leases'))).toBe(0);
    expect(await raw.hlen(k('processing:owners'))).toBe(0);
    expect(await raw.hgetall(k('stats'))).toEqual({ released: '1' });
    // The per-minute counters must expire even when a minute saw only releases.
    const minuteTtl = await ttlOf(k(`stats:minute:${MINUTE}`));
    expectTtlNear(minuteTtl, 7200);

    const [next] = await queue.dequeue({ workerId: 'w2', leaseMs: 60_000, max: 1, lists: ALL_LISTS() });
    expect(next?.id).toBe(a.id);
  });

  it('an entry whose lease the caller does not hold returns false and changes nothing', async () => {
    const { job } = await enqueueAndTake('j', { workerId: 'w1' });
    const before = await snapshot();
    const replies = await queue.finish(
      'w2',
      [
        {
          id: job.id,
          action: 'complete',
          document: '{"x":1}',
          documentTtlSeconds: 10,
          result: { status: 'completed', durationMs: 1 },
        },
        { id: job.id, action: 'dead', document: '{"x":1}' },
        { id: job.id, action: 'release', target: k('queue:normal') },
        { id: 'not-held', action: 'retry', runAt: NOW, target: k('signal') },
      ],
      NOW,
    );
    expect(replies).toEqual([false, false, false, false]);
    expect(await snapshot()).toEqual(before);

    // The owner can still settle it, once.
    const mixed = await queue.finish(
      'w1',
      [
        { id: 'not-held', action: 'complete' },
        { id: job.id, action: 'complete' },
      ],
      NOW,
    );
    expect(mixed).toEqual([false, true]);
    expect(await queue.finish('w1', [{ id: job.id, action: 'complete' }], NOW)).toEqual([false]);
    expect(await raw.hgetall(k('stats'))).toEqual({ completed: '1' });
  });

  it('settles a batch of entries in one call and counts them', async () => {
    const jobs = await Promise.all([1, 2, 3].map(() => queue.enqueue('j', null)));
    const taken = await queue.dequeue({ workerId: 'w1', leaseMs: 60_000, max: 3, lists: ALL_LISTS() });
    expect(taken.map((e) => e.id)).toEqual(jobs.map((j) => j.id));
    const [j1, j2, j3] = jobs as [Job, Job, Job];
    const replies = await queue.finish(
      'w1',
      [
        { id: j1.id, action: 'complete', result: { status: 'completed', durationMs: 5 } },
        { id: j2.id, action: 'retry', runAt: NOW },
        { id: j3.id, action: 'dead' },
      ],
      NOW,
    );
    expect(replies).toEqual([true, true, true]);
    expect(await raw.hgetall(k('stats'))).toEqual({ completed: '1', retried: '1', failed: '1' });
    expect(await raw.hgetall(k(`stats:minute:${MINUTE}`))).toEqual({
      completed: '1',
      retried: '1',
      failed: '1',
    });
    expect(await raw.zrange(k('queue:scheduled'), 0, -1)).toEqual([j2.id]);
    expect(await list(k('queue:dead'))).toEqual([j3.id]);
    expect(await raw.hgetall(k(`result:${j1.id}`))).toEqual({
      status: 'completed',
      completed_at: NOW.toISOString(),
      duration_ms: '5',
    });
    expect(await list(k('queue:processing'))).toEqual([]);
  });

  it('takes settled ids off processing wherever they are, leaving the others in order', async () => {
    const jobs = await Promise.all([1, 2, 3, 4, 5].map(() => queue.enqueue('j', null)));
    await queue.dequeue({ workerId: 'w1', leaseMs: 60_000, max: 5, lists: ALL_LISTS() });
    const [a, b, c, d, e] = jobs.map((j) => j.id) as [string, string, string, string, string];
    expect(await list(k('queue:processing'))).toEqual([e, d, c, b, a]);
    const done = (id: string): FinishEntry => ({ id, action: 'complete' });
    // The oldest (the tail), one in the middle and the newest (the head).
    expect(await queue.finish('w1', [done(a), done(e), done(c)], NOW)).toEqual([true, true, true]);
    expect(await list(k('queue:processing'))).toEqual([d, b]);
    // The tail is not ours (an original worker's job): ours is found further in.
    await raw.rpush(k('queue:processing'), 'held-by-an-original-worker');
    expect(await queue.finish('w1', [done(d)], NOW)).toEqual([true]);
    expect(await list(k('queue:processing'))).toEqual([b, 'held-by-an-original-worker']);
    await raw.rpop(k('queue:processing'));
    // The whole tail; an id given twice is taken off once.
    expect(await queue.finish('w1', [done(b), done(b)], NOW)).toEqual([true, false]);
    expect(await raw.exists(k('queue:processing'))).toBe(0);
    expect(await raw.zcard(k('processing:leases'))).toBe(0);
  });

  it('settles a batch mixing short completions with the other forms, each entry as given', async () => {
    const jobs = await Promise.all([1, 2, 3, 4, 5].map(() => queue.enqueue('j', null)));
    await queue.dequeue({ workerId: 'w1', leaseMs: 60_000, max: 5, lists: ALL_LISTS() });
    const [a, b, c, d, e] = jobs as [Job, Job, Job, Job, Job];
    const doc = (job: Job, status: Job['status']) => encodeJob({ ...job, status });
    const completedTtl = queue.ttl.completedSeconds;
    const replies = await queue.finish(
      'w1',
      [
        // short form: a completion with its document and a completed result
        {
          id: a.id,
          action: 'complete',
          document: doc(a, 'completed'),
          documentTtlSeconds: completedTtl,
          result: { status: 'completed', resultJson: '{"a":1}', durationMs: 1 },
        },
        { id: b.id, action: 'retry', document: doc(b, 'pending'), runAt: NOW },
        {
          id: c.id,
          action: 'complete',
          document: doc(c, 'completed'),
          documentTtlSeconds: completedTtl,
          result: { status: 'completed', durationMs: 3 },
        },
        // long form: another document TTL
        {
          id: d.id,
          action: 'complete',
          document: doc(d, 'completed'),
          documentTtlSeconds: 60,
          result: { status: 'completed', resultJson: '"d"', durationMs: 4 },
        },
        {
          id: e.id,
          action: 'dead',
          document: doc(e, 'failed'),
          documentTtlSeconds: queue.ttl.failedSeconds,
          result: { status: 'failed', error: 'e failed', durationMs: 5 },
        },
      ],
      NOW,
    );
    expect(replies).toEqual([true, true, true, true, true]);
    expect(await raw.hgetall(k('stats'))).toEqual({ completed: '3', retried: '1', failed: '1' });
    expect(await raw.get(k(`job:${a.id}`))).toBe(doc(a, 'completed'));
    expectTtlNear(await ttlOf(k(`job:${a.id}`)), completedTtl);
    expect(await raw.hgetall(k(`result:${a.id}`))).toEqual({
      status: 'completed',
      completed_at: NOW.toISOString(),
      duration_ms: '1',
      result: '{"a":1}',
    });
    expect(await raw.get(k(`job:${b.id}`))).toBe(doc(b, 'pending'));
    expect(await ttlOf(k(`job:${b.id}`))).toBe(-1);
    expect(await raw.zrange(k('queue:scheduled'), 0, -1)).toEqual([b.id]);
    expect(await raw.exists(k(`result:${b.id}`))).toBe(0);
    expect(await raw.hgetall(k(`result:${c.id}`))).toEqual({
      status: 'completed',
      completed_at: NOW.toISOString(),
      duration_ms: '3',
    });
    expectTtlNear(await ttlOf(k(`job:${d.id}`)), 60);
    expect(await raw.hget(k(`result:${d.id}`), 'result')).toBe('"d"');
    expect(await list(k('queue:dead'))).toEqual([e.id]);
    expect(await raw.hgetall(k(`result:${e.id}`))).toEqual({
      status: 'failed',
      completed_at: NOW.toISOString(),
      duration_ms: '5',
      error: 'e failed',
    });
    expect(await list(k('queue:processing'))).toEqual([]);
    expect(await raw.zcard(k('processing:leases'))).toBe(0);
  });

  it('rewrites the result an earlier attempt left: its result or error field not set again is removed', async () => {
    const jobs = await Promise.all([1, 2, 3, 4, 5].map(() => queue.enqueue('j', null)));
    await queue.dequeue({ workerId: 'w1', leaseMs: 60_000, max: 5, lists: ALL_LISTS() });
    const [a, b, c, d, e] = jobs as [Job, Job, Job, Job, Job];
    const old = { status: 'failed', completed_at: '2020-01-01T00:00:00Z', duration_ms: '9' };
    await raw.hset(k(`result:${a.id}`), { ...old, error: 'old error' });
    await raw.hset(k(`result:${b.id}`), { ...old, status: 'completed', result: '{"old":1}' });
    await raw.hset(k(`result:${c.id}`), { ...old, error: 'old error', result: '{"old":1}' });
    await raw.set(k(`result:${d.id}`), 'not a hash');
    await raw.hset(k(`result:${e.id}`), { ...old, status: 'completed', result: '{"old":1}' });
    const complete = (job: Job, resultJson?: string): FinishEntry => ({
      id: job.id,
      action: 'complete',
      document: encodeJob({ ...job, status: 'completed' }),
      documentTtlSeconds: queue.ttl.completedSeconds,
      result: { status: 'completed', resultJson, durationMs: 1 },
    });
    const replies = await queue.finish(
      'w1',
      [
        complete(a, '{"new":1}'),
        complete(b),
        complete(c),
        complete(d),
        {
          id: e.id,
          action: 'dead',
          document: encodeJob({ ...e, status: 'failed' }),
          documentTtlSeconds: queue.ttl.failedSeconds,
          result: { status: 'failed', error: 'new error', durationMs: 1 },
        },
      ],
      NOW,
    );
    expect(replies).toEqual([true, true, true, true, true]);
    const now = { completed_at: NOW.toISOString(), duration_ms: '1' };
    expect(await raw.hgetall(k(`result:${a.id}`))).toEqual({
      status: 'completed',
      ...now,
      result: '{"new":1}',
    });
    expect(await raw.hgetall(k(`result:${b.id}`))).toEqual({ status: 'completed', ...now });
    expect(await raw.hgetall(k(`result:${c.id}`))).toEqual({ status: 'completed', ...now });
    expect(await raw.hgetall(k(`result:${d.id}`))).toEqual({ status: 'completed', ...now });
    expect(await raw.hgetall(k(`result:${e.id}`))).toEqual({ status: 'failed', ...now, error: 'new error' });
    for (const job of [a, b, c, d]) expectTtlNear(await ttlOf(k(`result:${job.id}`)), 3600);
    expectTtlNear(await ttlOf(k(`result:${e.id}`)), 86_400);
  });
});

// ---------------------------------------------------------------------------------------------------
// promoteDue
// ---------------------------------------------------------------------------------------------------

describe('promoteDue', () => {
  const T0 = new Date('2030-06-01T00:00:00.000Z');
  const at = (ms: number): Date => new Date(T0.getTime() + ms);

  it('moves due jobs to the ready list of their priority and route, keeps the rest, returns nextDueAt', async () => {
    const { enqueued } = await queue.enqueueBatch(
      [
        { name: 'a', id: 'a', priority: 'high', delayMs: 1_000 },
        { name: 'b', id: 'b', priority: 'low', routingKey: 'gpu', delayMs: 2_000 },
        { name: 'c', id: 'c', delayMs: 10_500 },
      ],
      T0,
    );
    expect(enqueued).toHaveLength(3);
    const docs = await snapshot();
    await raw.zadd(k('queue:scheduled'), secondsScore(at(1_500)), 'ghost'); // no document
    await raw.del(k('signal'), k('route:gpu:signal'));

    expect(await queue.promoteDue(1000, at(5_000))).toEqual({ moved: 3, nextDueAt: at(10_500) });
    expect(await list(k('queue:high'))).toEqual(['a']);
    expect(await list(k('route:gpu:queue:low'))).toEqual(['b']);
    expect(await list(k('queue:normal'))).toEqual(['ghost']);
    expect(await raw.zrange(k('queue:scheduled'), 0, -1, 'WITHSCORES')).toEqual(['c', '1906502410.5']);
    expect(await list(k('signal'))).toEqual(['1']);
    expect(await list(k('route:gpu:signal'))).toEqual(['1']);
    // Documents are not rewritten (still status scheduled, same bytes, no TTL).
    for (const id of ['a', 'b', 'c']) {
      expect((await snapshot())[k(`job:${id}`)]).toEqual(docs[k(`job:${id}`)]);
    }
    expect(await raw.exists(k('job:ghost'))).toBe(0);

    // Again at the same time: nothing to do.
    expect(await queue.promoteDue(1000, at(5_000))).toEqual({ moved: 0, nextDueAt: at(10_500) });
    // Exactly at the due time (score ≤ now).
    expect(await queue.promoteDue(1000, at(10_500))).toEqual({ moved: 1 });
    expect(await list(k('queue:normal'))).toEqual(['c', 'ghost']);
    expect(await raw.exists(k('queue:scheduled'))).toBe(0);
    expect(await queue.promoteDue(1000, at(60_000))).toEqual({ moved: 0 });

    // The missing one is dead-lettered by the next dequeue.
    const taken = await drain(ALL_LISTS());
    expect(taken.map((e) => [e.id, e.document !== undefined])).toEqual([
      ['a', true],
      ['ghost', false],
      ['c', true],
      ['b', true],
    ]);
    expect(await list(k('queue:dead'))).toEqual(['ghost']);
  });

  it('returns a nextDueAt at which the earliest job is due, also for a score finer than a millisecond', async () => {
    const runAt = new Date('2031-05-06T07:08:11.623Z');
    await queue.enqueue('j', null, { id: 'ms', runAt });
    const early = new Date(runAt.getTime() - 1000);
    expect(await queue.promoteDue(1000, early)).toEqual({ moved: 0, nextDueAt: runAt });
    expect(await queue.promoteDue(1000, runAt)).toEqual({ moved: 1 });

    // The Python SDK writes microsecond scores (repr(datetime.timestamp())).
    await raw.set(k('job:py'), '{"id": "py", "name": "j", "payload": {}, "status": "scheduled"}');
    await raw.zadd(k('queue:scheduled'), '1893553445.678901', 'py');
    const { moved, nextDueAt } = await queue.promoteDue(1000, new Date(1893553445_000));
    expect(moved).toBe(0);
    expect(nextDueAt?.getTime()).toBe(1893553445_679);
    expect(await queue.promoteDue(1000, nextDueAt)).toEqual({ moved: 1 });
    expect(await list(k('queue:normal'))).toEqual(['py', 'ms']);
  });

  it('promotes in due order (earliest is dequeued first) and honours the limit', async () => {
    await queue.enqueueBatch(
      [
        { name: 'j', id: 'third', delayMs: 3_000 },
        { name: 'j', id: 'first', delayMs: 1_000 },
        { name: 'j', id: 'second', delayMs: 2_000 },
      ],
      T0,
    );
    expect(await queue.promoteDue(2, at(10_000))).toEqual({ moved: 2, nextDueAt: at(3_000) });
    expect(await list(k('queue:normal'))).toEqual(['second', 'first']);
    expect(await queue.promoteDue(2, at(10_000))).toEqual({ moved: 1 });
    const taken = await drain(ALL_LISTS());
    expect(taken.map((e) => e.id)).toEqual(['first', 'second', 'third']);
  });

  it('moves each due job exactly once with 20 concurrent promoters over 500 due jobs', async () => {
    const requests: EnqueueRequest[] = [];
    for (let i = 0; i < 500; i++) {
      requests.push({
        name: 'j',
        id: `job-${i}`,
        priority: PRIORITIES[i % 3],
        routingKey: i % 2 === 0 ? 'default' : 'gpu',
        delayMs: 1 + (i % 97),
      });
    }
    // Not yet due at promotion time.
    requests.push({ name: 'j', id: 'later', delayMs: 3_600_000 });
    const { enqueued } = await queue.enqueueBatch(requests, T0);
    expect(enqueued).toHaveLength(501);

    const promoters = Array.from({ length: 20 }, () => new Queue(client(), { prefix }));
    await Promise.all(promoters.map((p) => p.redis.ping()));
    const now = at(60_000);
    const moved = await Promise.all(
      promoters.map(async (p) => {
        let total = 0;
        for (;;) {
          const { moved: n } = await p.promoteDue(7, now);
          if (n === 0) return total;
          total += n;
        }
      }),
    );
    expect(moved.reduce((s, n) => s + n, 0)).toBe(500);

    const seen = new Map<string, string[]>();
    for (const key of ALL_LISTS()) {
      for (const id of await list(key)) seen.set(id, [...(seen.get(id) ?? []), key]);
    }
    expect(seen.size).toBe(500);
    for (let i = 0; i < 500; i++) {
      const expected = queue.keys.queue(PRIORITIES[i % 3] as Priority, i % 2 === 0 ? 'default' : 'gpu');
      expect(seen.get(`job-${i}`), `job-${i}`).toEqual([expected]);
    }
    expect(await raw.zrange(k('queue:scheduled'), 0, -1)).toEqual(['later']);
  });
});

// ---------------------------------------------------------------------------------------------------
// recoverExpiredLeases and extendLeases
// ---------------------------------------------------------------------------------------------------

describe('recoverExpiredLeases', () => {
  it('puts expired jobs back at the head of their ready list and returns the previous owner', async () => {
    // Take `a` (high, default) as w1 and `b` (low, gpu) as w2 with short leases; `c` as w3 with a long one.
    const { job: a } = await enqueueAndTake('j', { priority: 'high', workerId: 'w1', leaseMs: 1_000 });
    const waiting = await queue.enqueue('j', null, { priority: 'high' });
    const { job: b } = await enqueueAndTake('j', {
      priority: 'low',
      routingKey: 'gpu',
      workerId: 'w2',
      leaseMs: 1_000,
    });
    const { job: c } = await enqueueAndTake('j', { workerId: 'w3', leaseMs: 600_000 });
    await raw.del(k('signal'), k('route:gpu:signal'));
    const processingBefore = await list(k('queue:processing'));
    expect(processingBefore.sort()).toEqual([a.id, b.id, c.id].sort());

    const recovered = await queue.recoverExpiredLeases(1000, new Date(Date.now() + 60_000));
    const byId = (x: { id: string }, y: { id: string }): number => x.id.localeCompare(y.id);
    expect(recovered.sort(byId)).toEqual(
      [
        { id: a.id, owner: 'w1' },
        { id: b.id, owner: 'w2' },
      ].sort(byId),
    );
    expect(await list(k('queue:high'))).toEqual([waiting.id, a.id]); // RPUSH: a is next out
    expect(await list(k('route:gpu:queue:low'))).toEqual([b.id]);
    expect(await list(k('queue:processing'))).toEqual([c.id]);
    expect(await raw.zrange(k('processing:leases'), 0, -1)).toEqual([c.id]);
    expect(await raw.hgetall(k('processing:owners'))).toEqual({ [c.id]: 'w3' });
    expect(await list(k('signal'))).toEqual(['1']);
    expect(await list(k('route:gpu:signal'))).toEqual(['1']);

    // The old owner can no longer settle it; the next dequeue takes it first.
    expect(await queue.finish('w1', [{ id: a.id, action: 'complete' }])).toEqual([false]);
    const [next] = await queue.dequeue({ workerId: 'w4', leaseMs: 60_000, max: 1, lists: ALL_LISTS() });
    expect(next?.id).toBe(a.id);
    expect(await queue.recoverExpiredLeases(1000, new Date())).toEqual([]);
  });

  it('never touches an id in processing that has no lease (an original Go worker holds it)', async () => {
    await raw.set(
      k('job:go-held'),
      '{"id":"go-held","name":"j","payload":null,"status":"pending","priority":"high"}',
    );
    await raw.lpush(k('queue:processing'), 'go-held');
    const { job } = await enqueueAndTake('j', { workerId: 'w1', leaseMs: 1 });
    await new Promise((r) => setTimeout(r, 5));

    const recovered = await queue.recoverExpiredLeases(1000, new Date(Date.now() + 3_600_000));
    expect(recovered).toEqual([{ id: job.id, owner: 'w1' }]);
    expect(await list(k('queue:processing'))).toEqual(['go-held']);
    expect(await list(k('queue:high'))).toEqual([]);
    expect(await list(k('queue:normal'))).toEqual([job.id]);
    expect(await queue.recoverExpiredLeases(1000, new Date(Date.now() + 3_600_000))).toEqual([]);
    expect(await list(k('queue:processing'))).toEqual(['go-held']);
  });
});

describe('recoverExpiredLeases with a stale lease', () => {
  it('only drops a lease whose id is no longer in processing, and queues nothing', async () => {
    const { job } = await enqueueAndTake('j', { workerId: 'w1', leaseMs: 1 });
    await raw.lrem(k('queue:processing'), 0, job.id); // taken out by hand, as the runbook does
    expect(await queue.recoverExpiredLeases(1000, new Date(Date.now() + 60_000))).toEqual([]);
    expect(await raw.zcard(k('processing:leases'))).toBe(0);
    expect(await raw.hlen(k('processing:owners'))).toBe(0);
    expect(await list(k('queue:normal'))).toEqual([]);
  });
});

describe('extendLeases', () => {
  it('extends only the leases the worker holds and returns the others', async () => {
    const { job: a } = await enqueueAndTake('j', { workerId: 'w1', leaseMs: 10_000 });
    const { job: b } = await enqueueAndTake('j', { workerId: 'w1', leaseMs: 10_000 });
    const { job: c } = await enqueueAndTake('j', { workerId: 'w2', leaseMs: 10_000 });
    const cDeadline = await raw.zscore(k('processing:leases'), c.id);

    const before = Date.now();
    const lost = await queue.extendLeases('w1', [a.id, b.id, c.id, 'unknown'], 120_000);
    const after = Date.now();
    expect(lost).toEqual([c.id, 'unknown']);
    for (const id of [a.id, b.id]) {
      const deadline = Number(await raw.zscore(k('processing:leases'), id));
      expect(deadline).toBeGreaterThanOrEqual(before + 120_000);
      expect(deadline).toBeLessThanOrEqual(after + 120_000);
    }
    expect(await raw.zscore(k('processing:leases'), c.id)).toBe(cDeadline);
    expect(await raw.zscore(k('processing:leases'), 'unknown')).toBeNull();
    expect(await raw.hgetall(k('processing:owners'))).toEqual({ [a.id]: 'w1', [b.id]: 'w1', [c.id]: 'w2' });
    expect(await queue.extendLeases('w1', [], 1000)).toEqual([]);
  });
});

describe('abandonUntrackedLeases', () => {
  it("expires only the worker's leases on ids it does not track; recovery then requeues them", async () => {
    const { job: tracked } = await enqueueAndTake('j', { workerId: 'w1', leaseMs: 60_000 });
    const { job: lostReply } = await enqueueAndTake('j', { workerId: 'w1', leaseMs: 60_000 });
    const { job: other } = await enqueueAndTake('j', { workerId: 'w2', leaseMs: 60_000 });

    expect(await queue.abandonUntrackedLeases('w1', new Set([tracked.id]))).toEqual([lostReply.id]);
    expect(await raw.zscore(k('processing:leases'), lostReply.id)).toBe('0');
    const recovered = await queue.recoverExpiredLeases();
    expect(recovered).toEqual([{ id: lostReply.id, owner: 'w1' }]);
    expect(await list(k('queue:normal'))).toEqual([lostReply.id]);
    expect((await list(k('queue:processing'))).sort()).toEqual([tracked.id, other.id].sort());
    expect(await queue.abandonUntrackedLeases('w3', new Set())).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------------
// Documents written by the original producers
// ---------------------------------------------------------------------------------------------------

describe.each(VECTOR_FILES)('vectors: %s', (file) => {
  it('every queued job is dequeued with its exact document; every scheduled one is promoted', async () => {
    const vectors = loadVectors(file);
    await seedVectors(raw, vectors, prefix);
    const seeded = new Map<string, string>(); // id → document text
    for (const [key, entry] of Object.entries(vectors.keys)) {
      const renamed = renameKey(key, prefix);
      if (entry.type === 'string' && renamed.startsWith(k('job:')))
        seeded.set(renamed.slice(k('job:').length), entry.value);
    }
    const lists = ALL_LISTS();
    const listValue = (key: string): string[] => {
      const entry = vectors.keys[`bananas:${key.slice(prefix.length)}`];
      return entry?.type === 'list' ? entry.value : [];
    };
    const expectedOrder = lists.flatMap((key) => [...listValue(key)].reverse());
    expect(expectedOrder.length).toBeGreaterThan(0);

    const taken = await drain(lists, 'w-vectors');
    expect(taken.map((e) => e.id)).toEqual(expectedOrder);
    for (const entry of taken) {
      const text = seeded.get(entry.id);
      expect(text, `document of ${JSON.stringify(entry.id)}`).toBeDefined();
      expect(Buffer.compare(entry.document as Buffer, Buffer.from(text as string, 'utf8'))).toBe(0);
      const result = decodeJob(entry.document as Buffer);
      if (result.ok) expect(result.job.id).toBe(entry.id);
      else
        expect(result, `${entry.id} decodes as a job or a stub`).toMatchObject({
          kind: 'stub',
          stub: { id: entry.id },
        });
    }
    for (const id of expectedOrder) expect(await raw.hget(k('processing:owners'), id)).toBe('w-vectors');
    expect(await raw.exists(...lists)).toBe(0);

    if (file === 'go-original') {
      // The cron job: list entry '' and key `<prefix>job:`.
      const cron = taken.find((e) => e.id === '');
      expect(cron?.sourceList).toBe(k('queue:normal'));
      expect(decoded(cron?.document)).toMatchObject({
        id: '',
        name: 'daily_report',
        maxRetries: 0,
        status: '',
      });
      // The id an original worker holds stays in processing, and the dead-letter list is untouched.
      expect(await list(k('queue:processing'))).toContain('c0ffee00-1234-4abc-8def-0123456789ab');
      expect(await list(k('queue:dead'))).toEqual(listValue(k('queue:dead')));
    }

    // The scheduled set, promoted with a far-future clock.
    const scheduledEntry = vectors.keys['bananas:queue:scheduled'];
    const members = scheduledEntry?.type === 'zset' ? scheduledEntry.value.map((m) => m.member) : [];
    expect(members.length).toBeGreaterThan(0);
    expect(await queue.promoteDue(1000, new Date('2100-01-01T00:00:00Z'))).toEqual({ moved: members.length });
    expect(await raw.exists(k('queue:scheduled'))).toBe(0);
    for (const id of members) {
      const doc = JSON.parse(seeded.get(id) as string) as { priority?: string; routing_key?: string };
      const target = queue.keys.queue(normalizePriority(doc.priority), normalizeRoutingKey(doc.routing_key));
      expect(await list(target), `${id} promoted to ${target}`).toContain(id);
      expect(await raw.get(k(`job:${id}`))).toBe(seeded.get(id)); // not rewritten
    }
    if (file === 'python-sdk') {
      // The naive scheduled_for the Go mover could never parse.
      expect(await list(k('queue:normal'))).toContain('549e6cac-b37e-4334-9fc4-e61b3fc59b70');
    }
    const promoted = await drain(lists, 'w-vectors');
    expect(promoted.map((e) => e.id).sort()).toEqual([...members].sort());
    for (const entry of promoted) expect(decoded(entry.document).id).toBe(entry.id);

    // Every id this test dequeued holds a lease; an id an original worker left in processing does not.
    const recovered = await queue.recoverExpiredLeases(1000, new Date('2100-01-01T00:00:00Z'));
    expect(recovered.map((r) => r.id).sort()).toEqual([...expectedOrder, ...members].sort());
    const original = vectors.keys['bananas:queue:processing'];
    expect(await list(k('queue:processing'))).toEqual(original?.type === 'list' ? original.value : []);
  });
});

// ---------------------------------------------------------------------------------------------------
// A key holding the wrong kind of value: Redis does not roll back a script that fails half way, so no
// script may take an id out of one place and then fail to write it to another.
// ---------------------------------------------------------------------------------------------------

describe('a key holding the wrong kind of value', () => {
  const NOW = new Date('2031-05-06T07:08:09.123Z');
  const wrongType = (key: string, type: string, kind: string): RegExp =>
    new RegExp(`^WRONGTYPE ${k(key)} holds a ${type}, not a ${kind}; nothing was changed$`);

  it('enqueue: a ready list of the batch is a string, so nothing of the batch is written', async () => {
    await raw.set(k('queue:high'), 'x');
    const before = await snapshot();
    const error = await queue
      .enqueueBatch([
        { name: 'a', id: 'a' },
        { name: 'b', id: 'b', priority: 'high' },
        { name: 'c', id: 'c', delayMs: 60_000 },
      ])
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    // Nothing changed (checked first: a script failing half way would have lost ids).
    expect(await snapshot()).toEqual(before);
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toMatch(wrongType('queue:high', 'string', 'list'));
  });

  it('enqueue: the scheduled set is a list, so a delayed job is refused and nothing is written', async () => {
    await raw.rpush(k('queue:scheduled'), 'x');
    const before = await snapshot();
    const error = await queue.enqueue('a', null, { delayMs: 60_000 }).then(
      () => undefined,
      (e: unknown) => e,
    );
    // Nothing changed (checked first: a script failing half way would have lost ids).
    expect(await snapshot()).toEqual(before);
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toMatch(wrongType('queue:scheduled', 'list', 'zset'));
  });

  it('dequeue: a list of the wrong kind is skipped and reported; the jobs of the lists before and after it are served', async () => {
    const h1 = await queue.enqueue('j', null, { priority: 'high' });
    const h2 = await queue.enqueue('j', null, { priority: 'high' });
    const l1 = await queue.enqueue('j', null, { priority: 'low' });
    await raw.set(k('queue:normal'), 'x');
    const lists = queue.listsServed(PRIORITIES, ['default']);
    const wrong: Array<{ key: string; type: string }> = [];
    const taken = await queue.dequeue({
      workerId: 'w1',
      leaseMs: 60_000,
      max: 10,
      lists,
      onWrongKind: (w) => wrong.push(w),
    });
    expect(taken.map((e) => e.id)).toEqual([h1.id, h2.id, l1.id]);
    expect(taken.map((e) => e.sourceList)).toEqual([k('queue:high'), k('queue:high'), k('queue:low')]);
    expect(wrong).toEqual([{ key: k('queue:normal'), type: 'string' }]);
    expect((await list(k('queue:processing'))).sort()).toEqual([h1.id, h2.id, l1.id].sort());
    expect(await raw.hgetall(k('processing:owners'))).toEqual({
      [h1.id]: 'w1',
      [h2.id]: 'w1',
      [l1.id]: 'w1',
    });
    expect(await raw.get(k('queue:normal'))).toBe('x');
    // A caller that does not ask to hear about it gets the jobs all the same.
    const l2 = await queue.enqueue('j', null, { priority: 'low' });
    expect(
      (await queue.dequeue({ workerId: 'w1', leaseMs: 60_000, max: 10, lists })).map((e) => e.id),
    ).toEqual([l2.id]);
  });

  it('dequeue: the processing list is a string, so the call fails before any id leaves its ready list', async () => {
    await queue.enqueue('j', null, { priority: 'high' });
    await queue.enqueue('j', null);
    await raw.set(k('queue:processing'), 'x');
    const before = await snapshot();
    const error = await queue.dequeue({ workerId: 'w1', leaseMs: 60_000, max: 10, lists: ALL_LISTS() }).then(
      () => undefined,
      (e: unknown) => e,
    );
    // Nothing changed (checked first: a script failing half way would have lost ids).
    expect(await snapshot()).toEqual(before);
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toMatch(wrongType('queue:processing', 'string', 'list'));
  });

  it('promoteDue: a due job whose ready list is a string stays scheduled; the others are promoted', async () => {
    const T0 = new Date('2030-06-01T00:00:00.000Z');
    await queue.enqueueBatch(
      [
        { name: 'a', id: 'a', priority: 'high', delayMs: 1_000 },
        { name: 'b', id: 'b', delayMs: 2_000 },
        { name: 'c', id: 'c', priority: 'high', delayMs: 3_000 },
        { name: 'd', id: 'd', priority: 'low', delayMs: 4_000 },
      ],
      T0,
    );
    await raw.set(k('queue:high'), 'x');
    const result = await queue.promoteDue(3, new Date(T0.getTime() + 10_000));
    expect(result).toEqual({
      moved: 2,
      nextDueAt: new Date(T0.getTime() + 1_000),
      wrongKind: [{ key: k('queue:high'), type: 'string' }],
    });
    expect(await raw.zrange(k('queue:scheduled'), 0, -1)).toEqual(['a', 'c']);
    expect(await list(k('queue:normal'))).toEqual(['b']);
    expect(await list(k('queue:low'))).toEqual(['d']);
    expect(await raw.get(k('queue:high'))).toBe('x');
  });

  it('finish: a release whose target list is a string is refused for that entry only; the job keeps its lease', async () => {
    const { job: a, entry } = await enqueueAndTake('j', { workerId: 'w1' });
    const { job: b } = await enqueueAndTake('j', { priority: 'low', workerId: 'w1' });
    await raw.set(entry.sourceList, 'x');
    const refused: Array<{ id: string; key: string }> = [];
    const applied = await queue.finish(
      'w1',
      [
        { id: a.id, action: 'release', target: entry.sourceList },
        { id: b.id, action: 'release', target: k('queue:low') },
      ],
      NOW,
      (w) => refused.push(w),
    );
    expect(applied).toEqual([false, true]);
    expect(refused).toEqual([{ id: a.id, key: entry.sourceList }]);
    expect(await list(k('queue:processing'))).toEqual([a.id]);
    expect(await raw.zrange(k('processing:leases'), 0, -1)).toEqual([a.id]);
    expect(await raw.hgetall(k('processing:owners'))).toEqual({ [a.id]: 'w1' });
    expect(await list(k('queue:low'))).toEqual([b.id]);
    expect(await raw.hgetall(k('stats'))).toEqual({ released: '1' });
  });

  it.for([
    ['retry', 'queue:scheduled', 'zset'],
    ['dead', 'queue:dead', 'list'],
    ['complete', 'stats', 'hash'],
  ] as const)(
    'finish %s: %s of the wrong kind fails the whole batch before any write',
    async ([action, key, kind]) => {
      const { job: a } = await enqueueAndTake('j', { workerId: 'w1' });
      const { job: b } = await enqueueAndTake('j', { workerId: 'w1' });
      await raw.set(k(key), 'x');
      const before = await snapshot();
      const settle = (id: string): FinishEntry => ({
        id,
        action,
        document: '{"changed":true}',
        runAt: new Date(NOW.getTime() + 60_000),
        result: { status: 'failed', error: 'boom', durationMs: 1 },
      });
      const error = await queue.finish('w1', [settle(a.id), settle(b.id)], NOW).then(
        () => undefined,
        (e: unknown) => e,
      );
      // Nothing changed (checked first: a script failing half way would have lost ids).
      expect(await snapshot()).toEqual(before);
      expect(error).toBeInstanceOf(Error);
      expect((error as Error).message).toMatch(wrongType(key, 'string', kind));
    },
  );

  it('recoverExpiredLeases: a job whose ready list is a string stays in processing under its lease', async () => {
    const { job: a } = await enqueueAndTake('j', { priority: 'high', workerId: 'w1', leaseMs: 1_000 });
    const { job: b } = await enqueueAndTake('j', { priority: 'low', workerId: 'w2', leaseMs: 1_000 });
    await raw.set(k('queue:high'), 'x');
    const recovered = await queue.recoverExpiredLeases(1000, new Date(Date.now() + 60_000));
    expect(recovered).toEqual([{ id: b.id, owner: 'w2' }]);
    expect(await list(k('queue:processing'))).toEqual([a.id]);
    expect(await raw.zrange(k('processing:leases'), 0, -1)).toEqual([a.id]);
    expect(await raw.hgetall(k('processing:owners'))).toEqual({ [a.id]: 'w1' });
    expect(await list(k('queue:low'))).toEqual([b.id]);
    // Once the list is repaired, the next sweep returns it.
    await raw.del(k('queue:high'));
    expect(await queue.recoverExpiredLeases(1000, new Date(Date.now() + 60_000))).toEqual([
      { id: a.id, owner: 'w1' },
    ]);
    expect(await list(k('queue:high'))).toEqual([a.id]);
  });
});
