/**
 * Snapshots every key under a prefix (type, value, TTL) so a test can prove a command changed nothing,
 * or exactly what it changed.
 */
import type { Redis } from 'ioredis';
import { scanKeys } from '../../src/core/iterate.js';
import { escapeGlob } from '../../src/core/keys.js';

export interface KeySnapshot {
  type: string;
  value: unknown;
  /** -1 when the key has no TTL; otherwise true (the exact seconds drift while a test runs). */
  ttl: -1 | true;
}

export async function snapshot(redis: Redis, prefix: string): Promise<Record<string, KeySnapshot>> {
  const out: Record<string, KeySnapshot> = {};
  const keys: string[] = [];
  for await (const batch of scanKeys(redis, `${escapeGlob(prefix)}*`)) keys.push(...batch);
  keys.sort();
  for (const key of keys) {
    const type = await redis.type(key);
    let value: unknown;
    if (type === 'string') value = await redis.get(key);
    else if (type === 'list') value = await redis.lrange(key, 0, -1);
    else if (type === 'hash') value = await redis.hgetall(key);
    else if (type === 'zset') value = await redis.zrange(key, 0, -1, 'WITHSCORES');
    else if (type === 'set') value = (await redis.smembers(key)).sort();
    else value = `<${type}>`;
    const ttl = await redis.pttl(key);
    out[key] = { type, value, ttl: ttl < 0 ? -1 : true };
  }
  return out;
}

/** Keys whose snapshot differs (or exists on one side only), sorted. */
export function changedKeys(
  before: Record<string, KeySnapshot>,
  after: Record<string, KeySnapshot>,
): string[] {
  const keys = new Set([...Object.keys(before), ...Object.keys(after)]);
  return [...keys].filter((k) => JSON.stringify(before[k]) !== JSON.stringify(after[k])).sort();
}
