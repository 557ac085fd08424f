/**
 * Per-test Redis access: the shared test server's URL, a client, and a fresh key prefix so tests never
 * see each other's keys.
 */
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { createRedis } from '../../src/core/connection.js';
import { parseRedisUrl } from '../../src/core/redis-url.js';
import { inject } from 'vitest';

export function testRedisUrl(): string {
  return inject('redisUrl');
}

/** Whether the tests run against a Redis Cluster (`REDIS_URL=redis+cluster://…`). */
export function onCluster(url: string = testRedisUrl()): boolean {
  return parseRedisUrl(url).kind === 'cluster';
}

/** A prefix no other test uses; hash-tagged on a cluster, where a deployment must live in one slot. */
export function freshPrefix(): string {
  const name = `bt-${randomBytes(4).toString('hex')}`;
  return onCluster() ? `{${name}}:` : `${name}:`;
}

/** A client for the tests' own reads and writes (a cluster client when the tests run on a cluster). */
export function rawClient(url: string = testRedisUrl()): Redis {
  if (onCluster(url)) return createRedis({ url, mode: 'fail-fast' }) as unknown as Redis;
  return new Redis(url, { maxRetriesPerRequest: 1 });
}

/** Polls `check` until it returns a truthy value or the time runs out. */
export async function waitFor<T>(
  check: () => Promise<T> | T,
  timeoutMs = 10_000,
  what = 'condition',
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
