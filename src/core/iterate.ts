/**
 * Bounded-memory iteration over Redis data: SCAN (never KEYS) and list paging (never a whole list).
 */
import type { Redis } from 'ioredis';
import { isCluster, masterNodes, type RedisClient } from './connection.js';

/**
 * Yields batches of keys matching `pattern` (a SCAN glob; escape literal parts with escapeGlob). In Redis
 * Cluster SCAN only sees the node it runs on, so every master is scanned in turn (replicas hold copies).
 */
export async function* scanKeys(
  redis: RedisClient,
  pattern: string,
  options: { count?: number; type?: string } = {},
): AsyncGenerator<string[]> {
  // A cluster client knows its nodes once connected: a first command connects it (and learns the slots).
  if (isCluster(redis) && redis.status !== 'ready') await redis.ping();
  for (const node of masterNodes(redis)) yield* scanNode(node, pattern, options);
}

/** SCAN over one server. */
async function* scanNode(
  redis: Redis,
  pattern: string,
  options: { count?: number; type?: string },
): AsyncGenerator<string[]> {
  let cursor = '0';
  do {
    const args: Array<string | number> = ['MATCH', pattern, 'COUNT', options.count ?? 1000];
    if (options.type) args.push('TYPE', options.type);
    const [next, keys] = (await redis.call('SCAN', cursor, ...args)) as [string, string[]];
    cursor = next;
    if (keys.length > 0) yield keys;
  } while (cursor !== '0');
}

/**
 * Yields pages of a list from index `start` (0 = leftmost). Entries moved by others while paging may be
 * seen twice or missed: use it for reading, and confirm each entry in the script that changes it.
 */
export async function* pageList(
  redis: RedisClient,
  key: string,
  options: { pageSize?: number; start?: number; limit?: number } = {},
): AsyncGenerator<string[]> {
  const pageSize = options.pageSize ?? 1000;
  let index = options.start ?? 0;
  let remaining = options.limit ?? Infinity;
  while (remaining > 0) {
    const size = Math.min(pageSize, remaining);
    const page = await redis.lrange(key, index, index + size - 1);
    if (page.length === 0) return;
    yield page;
    index += page.length;
    remaining -= page.length;
    if (page.length < size) return;
  }
}

/**
 * Up to `count` entries of a list starting `skip` entries from its right end (the end workers take from;
 * the oldest entry of the dead-letter list), as LRANGE returns them (left to right). Negative indexes: entries
 * pushed on the left meanwhile do not shift the pages.
 */
export function lrangeFromRight(
  redis: RedisClient,
  key: string,
  skip: number,
  count: number,
): Promise<string[]> {
  return redis.lrange(key, -(skip + count), -(skip + 1));
}
