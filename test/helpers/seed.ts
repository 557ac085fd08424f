/**
 * Loads the wire-format vectors (test/fixtures/vectors/*.json: real documents captured from the original
 * producers) and writes their keys raw into Redis under a test prefix; builds job documents as the Go
 * service writes them.
 */
import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';

export const VECTOR_FILES = ['go-original', 'python-sdk', 'typescript-sdk'] as const;
export type VectorFileName = (typeof VECTOR_FILES)[number];

export type VectorKey =
  | { type: 'string'; value: string; ttl?: number }
  | { type: 'list'; value: string[]; ttl?: number }
  | { type: 'zset'; value: Array<{ member: string; score: string }>; ttl?: number }
  | { type: 'hash'; value: Record<string, string>; ttl?: number };

export interface VectorFile {
  producer: string;
  keys: Record<string, VectorKey>;
}

const ORIGINAL_PREFIX = 'bananas:';

export function loadVectors(name: VectorFileName): VectorFile {
  const url = new URL(`../fixtures/vectors/${name}.json`, import.meta.url);
  return JSON.parse(readFileSync(url, 'utf8')) as VectorFile;
}

/** `bananas:queue:high` → `<prefix>queue:high`. */
export function renameKey(key: string, prefix: string): string {
  if (!key.startsWith(ORIGINAL_PREFIX))
    throw new Error(`vector key ${key} does not start with ${ORIGINAL_PREFIX}`);
  return prefix + key.slice(ORIGINAL_PREFIX.length);
}

/**
 * Writes every key of a vector file under `prefix`: strings with SET, lists with RPUSH in the given order
 * (index 0 is the newest, leftmost entry), sorted sets with ZADD, hashes with HSET; positive TTLs are kept.
 */
export async function seedVectors(redis: Redis, file: VectorFile, prefix: string): Promise<void> {
  for (const [originalKey, entry] of Object.entries(file.keys)) {
    const key = renameKey(originalKey, prefix);
    switch (entry.type) {
      case 'string':
        await redis.set(key, entry.value);
        break;
      case 'list':
        if (entry.value.length > 0) await redis.rpush(key, ...entry.value);
        break;
      case 'zset':
        for (const { member, score } of entry.value) await redis.zadd(key, score, member);
        break;
      case 'hash':
        await redis.hset(key, entry.value);
        break;
      default:
        throw new Error(`unknown vector key type in ${originalKey}`);
    }
    if (entry.ttl !== undefined && entry.ttl > 0) await redis.expire(key, entry.ttl);
  }
}

/**
 * A pending job document as the Go service writes it, in its field order (error only when given).
 * `fields` replace fields in place; fields that are not in the base (scheduled_for, ...) are appended, in
 * their order.
 */
export function jobDocument(id: string, fields: Record<string, unknown> = {}): string {
  return JSON.stringify({
    id,
    name: 'send_email',
    payload: {},
    status: 'pending',
    priority: 'normal',
    created_at: '2025-11-10T04:16:35.123Z',
    updated_at: '2025-11-10T04:16:35.123Z',
    attempts: 0,
    max_retries: 3,
    error: undefined,
    routing_key: 'default',
    ...fields,
  });
}

/** A dead job as the Go service leaves it (status failed, attempts exhausted); `fields` as for jobDocument. */
export function deadJobDocument(id: string, fields: Record<string, unknown> = {}): string {
  return jobDocument(id, {
    name: 'charge_card',
    payload: { amount: 1999 },
    status: 'failed',
    created_at: '2025-11-10T04:16:33.1234567Z',
    updated_at: '2025-11-10T04:16:47Z',
    attempts: 3,
    error: 'card declined',
    ...fields,
  });
}
