/**
 * Property-based tests of the job codec: thousands of malformed documents never make decode throw, and
 * every valid document round-trips with its payload and unknown fields byte for byte.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeJob, encodeJob, KNOWN_FIELDS } from '../../src/core/codec.js';

const RUNS = 2000;

/** A JSON value, written compactly or with any indentation (the bytes a producer chose). */
const rawJson = fc
  .tuple(fc.jsonValue(), fc.constantFrom(undefined, 0, 1, 2, 4, '\t'))
  .map(([value, indent]) => JSON.stringify(value, null, indent));

const bigNumberText = fc.bigInt({ min: -(2n ** 80n), max: 2n ** 80n }).map((n) => n.toString());

const oddTimestamp = fc.oneof(
  fc.constant('0001-01-01T00:00:00Z'),
  fc.constant('2030-01-02T03:04:05.500000'),
  fc.constant('2025-11-10T09:46:33.1234567+05:30'),
  fc.constant('not a time'),
  fc.constant(''),
  fc.date({ noInvalidDate: true }).map((d) => d.toISOString()),
  fc.string(),
);

const unknownKey = fc.string({ minLength: 1, maxLength: 12 }).filter((k) => !KNOWN_FIELDS.has(k));

/** A valid job document as some producer might write it: any field order, spacing, unknown fields. */
const validDocument = fc
  .record({
    id: fc.string({ maxLength: 40 }),
    name: fc.string({ minLength: 1, maxLength: 30 }),
    payload: fc.oneof(
      rawJson,
      bigNumberText.map((n) => `{"n":${n},"f":1.0}`),
    ),
    priority: fc.constantFrom('high', 'normal', 'low', 'urgent', ''),
    status: fc.constantFrom('pending', 'completed', 'failed', 'scheduled', ''),
    attempts: fc.nat({ max: 1000 }),
    max_retries: fc.nat({ max: 1000 }),
    created_at: oddTimestamp,
    error: fc.option(fc.string(), { nil: undefined }),
    routing_key: fc.option(fc.constantFrom('', 'default', 'gpu'), { nil: undefined }),
    extra: fc.uniqueArray(fc.tuple(unknownKey, rawJson), { maxLength: 3, selector: ([k]) => k }),
    spacing: fc.constantFrom('', ' '),
    shuffle: fc.integer(),
  })
  .map((d) => {
    const members: Array<[string, string]> = [
      ['id', JSON.stringify(d.id)],
      ['name', JSON.stringify(d.name)],
      ['payload', d.payload],
      ['priority', JSON.stringify(d.priority)],
      ['status', JSON.stringify(d.status)],
      ['attempts', String(d.attempts)],
      ['max_retries', String(d.max_retries)],
      ['created_at', JSON.stringify(d.created_at)],
      ...(d.error === undefined ? [] : ([['error', JSON.stringify(d.error)]] as Array<[string, string]>)),
      ...(d.routing_key === undefined
        ? []
        : ([['routing_key', JSON.stringify(d.routing_key)]] as Array<[string, string]>)),
      ...d.extra.map(([k, v]) => [JSON.stringify(k).slice(1, -1), v] as [string, string]),
    ];
    // A deterministic shuffle: readers must not depend on field order.
    const order = members.map((m, i) => ({ m, k: (Math.imul(i + 1, d.shuffle | 1) >>> 0) % 9973 }));
    order.sort((a, b) => a.k - b.k);
    const sep = d.spacing;
    const text = `{${order.map(({ m: [k, v] }) => `"${k}":${sep}${v}`).join(`,${sep}`)}}`;
    return { text, payload: d.payload, extra: d.extra };
  });

describe('codec properties', () => {
  it('never throws on arbitrary text, bytes or JSON', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string(),
          fc.string({ unit: 'binary' }),
          rawJson,
          fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b)),
          fc.object().map((o) => JSON.stringify(o)),
        ),
        (input) => {
          const result = decodeJob(input);
          expect(typeof result.ok).toBe('boolean');
          if (!result.ok) expect(result.reason.length).toBeGreaterThan(0);
        },
      ),
      { numRuns: RUNS },
    );
  });

  it('never throws on job-shaped documents with wrong types, huge values or deep nesting', () => {
    const wrongValue = fc.oneof(
      fc.jsonValue(),
      bigNumberText,
      fc.constant('1e400'),
      fc.constant('-0'),
      fc.string({ maxLength: 5000 }).map((s) => JSON.stringify(s)),
      fc.nat({ max: 3000 }).map((depth) => `${'['.repeat(depth)}${']'.repeat(depth)}`),
    );
    fc.assert(
      fc.property(
        fc.dictionary(
          fc.constantFrom(
            'id',
            'name',
            'payload',
            'attempts',
            'max_retries',
            'priority',
            'status',
            'error',
            'x',
          ),
          wrongValue.map((v) => (typeof v === 'string' ? v : JSON.stringify(v))),
        ),
        (fields) => {
          const text = `{${Object.entries(fields)
            .map(([k, v]) => `"${k}":${v}`)
            .join(',')}}`;
          const result = decodeJob(text);
          if (result.ok) {
            // Whatever is accepted is a real job and survives a rewrite.
            expect(typeof result.job.name).toBe('string');
            const again = decodeJob(encodeJob(result.job));
            expect(again.ok).toBe(true);
          }
        },
      ),
      { numRuns: RUNS },
    );
  });

  it('round-trips valid documents: payload and unknown fields byte for byte, stable re-encoding', () => {
    fc.assert(
      fc.property(validDocument, ({ text, payload, extra }) => {
        const first = decodeJob(text);
        expect(first.ok).toBe(true);
        if (!first.ok) return;
        expect(first.job.payload).toBe(payload);
        const encoded = encodeJob(first.job);
        const second = decodeJob(encoded);
        expect(second.ok).toBe(true);
        if (!second.ok) return;
        expect(second.job.payload).toBe(payload);
        for (const [key, value] of extra) {
          expect(second.job.extra).toContainEqual([key, value]);
        }
        expect(second.job).toEqual(first.job);
        expect(encodeJob(second.job)).toBe(encoded);
      }),
      { numRuns: RUNS },
    );
  });
});
