/**
 * A worker fed thousands of malformed documents mixed with good jobs: it never crashes, every bad one
 * ends in the dead-letter queue with its original bytes, every good one completes.
 */
import fc from 'fast-check';
import type { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { decodeJob, encodeJob, newJob } from '../../src/core/codec.js';
import { createLogger } from '../../src/core/logger.js';
import { Queue } from '../../src/core/queue.js';
import { Worker } from '../../src/core/worker.js';
import { freshPrefix, rawClient, testRedisUrl, waitFor } from '../helpers/context.js';

const TOTAL = 10_000;
let redis: Redis;
let prefix: string;
let worker: Worker | undefined;

beforeEach(() => {
  redis = rawClient();
  prefix = freshPrefix();
});

afterEach(async () => {
  await worker?.stop();
  redis.disconnect();
});

/** Documents that are not jobs, in every way the codec must survive. */
function malformedDocuments(count: number): Buffer[] {
  const kinds = fc.oneof(
    fc.string({ maxLength: 200 }).map((s) => Buffer.from(s)),
    fc
      .uint8Array({ minLength: 1, maxLength: 200 })
      .map((b) =>
        Buffer.concat([Buffer.from('{"name":"ok","x":"'), Buffer.from([0xff, 0xfe]), Buffer.from(b)]),
      ),
    fc.jsonValue().map((v) => Buffer.from(JSON.stringify(Array.isArray(v) ? v : [v]))),
    fc
      .record({ name: fc.oneof(fc.integer(), fc.constant(''), fc.constant(null)), id: fc.string() })
      .map((r) => Buffer.from(JSON.stringify(r))),
    fc
      .record({
        name: fc.constant('ok'),
        id: fc.string(),
        attempts: fc.oneof(fc.constant('3'), fc.constant(-1), fc.constant(1.5), fc.constant(2 ** 60)),
      })
      .map((r) => Buffer.from(JSON.stringify(r))),
    fc.constant(Buffer.from('{"error":"Job data not found (corrupted reference)","id":"x"}')),
    fc
      .nat({ max: 5000 })
      .map((d) => Buffer.from(`{"name":"ok","id":"d","payload":${'['.repeat(d)}${']'.repeat(d)}`)),
    fc.constant(Buffer.from(`{"name":"ok","id":"h","payload":"${'x'.repeat(200_000)}`)),
  );
  return fc.sample(kinds, { numRuns: count, seed: 42 });
}

describe('worker under adversarial input', () => {
  it(`processes ${TOTAL.toLocaleString('en-US')} documents, half malformed: bad ones dead-lettered untouched, good ones completed`, async () => {
    const queue = new Queue(redis, { prefix });
    const bad = malformedDocuments(TOTAL / 2).filter((doc) => !decodeJob(doc).ok);
    const badIds = bad.map((_, i) => `bad-${i}`);
    const goodIds: string[] = [];
    const pipeline = redis.pipeline();
    for (let i = 0; i < TOTAL - bad.length; i++) {
      const job = newJob('ok', '{"n":12345678901234567890}', { id: `good-${i}` });
      goodIds.push(job.id);
      pipeline.set(queue.keys.job(job.id), encodeJob(job));
    }
    bad.forEach((doc, i) => pipeline.set(queue.keys.job(badIds[i]!), doc));
    // Interleave good and bad ids on the ready list.
    const ids = goodIds.flatMap((id, i) => (badIds[i] ? [id, badIds[i]] : [id]));
    for (let i = 0; i < ids.length; i += 1000)
      pipeline.lpush(queue.keys.queue('normal'), ...ids.slice(i, i + 1000));
    await pipeline.exec();
    expect(bad.length).toBeGreaterThan(TOTAL / 4);

    let ran = 0;
    worker = new Worker({
      handlers: { ok: () => void ran++ },
      redisUrl: testRedisUrl(),
      prefix,
      concurrency: 50,
      logger: createLogger({ level: 'silent' }),
    });
    await worker.start();
    await waitFor(
      async () =>
        (await redis.llen(queue.keys.dead)) === bad.length &&
        (await redis.hget(queue.keys.stats, 'completed')) === String(goodIds.length),
      120_000,
      'all documents settled',
    );

    expect(ran).toBe(goodIds.length);
    expect(await redis.llen(queue.keys.queue('normal'))).toBe(0);
    expect(await redis.llen(queue.keys.processing)).toBe(0);
    expect(new Set(await redis.lrange(queue.keys.dead, 0, -1))).toEqual(new Set(badIds));
    const stored = await redis.mgetBuffer(...badIds.map((id) => queue.keys.job(id)));
    stored.forEach((bytes, i) => expect(bytes?.equals(bad[i]!)).toBe(true));
    const sample = await redis.get(queue.keys.job(goodIds[0]!));
    expect(sample).toContain('"payload":{"n":12345678901234567890}');
    expect(sample).toContain('"status":"completed"');
    expect(worker.stats().deadLettered).toBe(bad.length);
  }, 180_000);
});
