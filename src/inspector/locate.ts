/**
 * Where things live: the routing keys in use, and every place a job id is referenced.
 */
import type { RedisClient } from '../core/connection.js';
import { scanKeys } from '../core/iterate.js';
import { escapeGlob, Keys, PRIORITIES, type Priority } from '../core/keys.js';

export interface ReadyList {
  key: string;
  priority: Priority;
  /** `default` for the default route. */
  routingKey: string;
  /** True for `route:default:queue:<p>` lists some original builds wrote. */
  legacy: boolean;
}

/** Every ready list: the default route's three, plus every routed list found by SCAN. */
export async function discoverReadyLists(redis: RedisClient, keys: Keys): Promise<ReadyList[]> {
  const lists: ReadyList[] = PRIORITIES.map((priority) => ({
    key: keys.queue(priority),
    priority,
    routingKey: 'default',
    legacy: false,
  }));
  const routePrefix = `${keys.prefix}route:`;
  const found: ReadyList[] = [];
  for await (const batch of scanKeys(redis, `${escapeGlob(routePrefix)}*:queue:*`, { type: 'list' })) {
    for (const key of batch) {
      const match = /^(.+):queue:(high|normal|low)$/.exec(key.slice(routePrefix.length));
      if (!match) continue;
      const [, routingKey, priority] = match as unknown as [string, string, Priority];
      found.push({ key, priority, routingKey, legacy: routingKey === 'default' });
    }
  }
  found.sort(
    (a, b) =>
      a.routingKey.localeCompare(b.routingKey) ||
      PRIORITIES.indexOf(a.priority) - PRIORITIES.indexOf(b.priority),
  );
  return [...lists, ...found];
}

export type PlaceKind = 'ready' | 'processing' | 'scheduled' | 'dead';

export interface JobPlace {
  kind: PlaceKind;
  key: string;
  /** Lists: how many entries the consumer takes before this one (0 = next). */
  position?: number;
  /** Scheduled set: when it becomes ready. */
  runAt?: string;
}

/** Every list or set under the prefix that references `id` (a job normally lives in exactly one). */
export async function locateJob(
  redis: RedisClient,
  keys: Keys,
  id: string,
  readyLists?: ReadyList[],
): Promise<JobPlace[]> {
  const lists = readyLists ?? (await discoverReadyLists(redis, keys));
  const candidates: Array<{ kind: PlaceKind; key: string }> = [
    ...lists.map((l) => ({ kind: 'ready' as const, key: l.key })),
    { kind: 'processing', key: keys.processing },
    { kind: 'dead', key: keys.dead },
  ];
  const pipeline = redis.pipeline();
  for (const { key } of candidates) {
    pipeline.lpos(key, id, 'RANK', -1);
    pipeline.llen(key);
  }
  pipeline.zscore(keys.scheduled, id);
  const replies = (await pipeline.exec()) ?? [];
  const places: JobPlace[] = [];
  candidates.forEach(({ kind, key }, i) => {
    const index = replies[2 * i]?.[1] as number | null;
    const length = replies[2 * i + 1]?.[1] as number;
    if (index !== null && index !== undefined) places.push({ kind, key, position: length - 1 - index });
  });
  const score = replies[2 * candidates.length]?.[1] as string | null;
  if (score !== null && score !== undefined) {
    places.push({
      kind: 'scheduled',
      key: keys.scheduled,
      runAt: new Date(Number(score) * 1000).toISOString(),
    });
  }
  return places;
}
