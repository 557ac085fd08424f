/**
 * Large dead-letter queues for the requeue tests (integration and fault suite): seeding N dead jobs
 * quickly, and auditing where every one of them ended up after requeues were killed or raced.
 */
import type { Redis } from 'ioredis';
import { decodeJob } from '../../src/core/codec.js';
import { pageList } from '../../src/core/iterate.js';
import { Keys, PRIORITIES, routeOf } from '../../src/core/keys.js';

/**
 * Writes a dead job per id (document with a 7-day TTL, as the Go service leaves it) and pushes the ids on
 * the dead-letter list, the first id oldest (at the tail), in pipelined chunks.
 */
export async function seedDeadJobs(
  redis: Redis,
  keys: Keys,
  ids: string[],
  documentFor: (id: string) => string,
): Promise<void> {
  for (let start = 0; start < ids.length; start += 10_000) {
    const chunk = ids.slice(start, start + 10_000);
    const pipeline = redis.pipeline();
    for (const id of chunk) pipeline.set(keys.job(id), documentFor(id), 'EX', 604800);
    pipeline.lpush(keys.dead, ...chunk);
    await pipeline.exec();
  }
}

export interface DeadLetterAudit {
  /** Seeded ids still in the dead-letter list. */
  dead: number;
  /** Seeded ids in a ready list. */
  ready: number;
  /** Seeded ids found nowhere. */
  lost: string[];
  /** Seeded ids referenced more than once (two lists, or twice in one list). */
  duplicated: string[];
  /** Seeded ids whose document (or TTL) does not match the place they are in. */
  mismatched: string[];
}

/**
 * Where every seeded id is after requeues: exactly once in the dead-letter list (with `deadDocumentFor`'s
 * exact bytes and a TTL) or exactly once in the ready list of its priority and routing key (pending,
 * attempts 0, no TTL). Looks at every priority of `routes` and the legacy default-route lists.
 */
export async function auditDeadLetterRequeue(
  redis: Redis,
  keys: Keys,
  ids: string[],
  deadDocumentFor: (id: string) => string,
  routes: string[] = ['default'],
): Promise<DeadLetterAudit> {
  const places = new Map<string, string[]>();
  const lists = [
    keys.dead,
    ...new Set(routes.flatMap((route) => PRIORITIES.flatMap((p) => keys.queuesServed(p, route)))),
  ];
  for (const list of lists) {
    for await (const page of pageList(redis, list)) {
      for (const id of page) places.set(id, [...(places.get(id) ?? []), list]);
    }
  }
  const audit: DeadLetterAudit = { dead: 0, ready: 0, lost: [], duplicated: [], mismatched: [] };
  for (let start = 0; start < ids.length; start += 5000) {
    const chunk = ids.slice(start, start + 5000);
    const pipeline = redis.pipeline();
    for (const id of chunk) pipeline.get(keys.job(id)).pttl(keys.job(id));
    const replies = (await pipeline.exec()) ?? [];
    chunk.forEach((id, i) => {
      const doc = replies[2 * i]?.[1] as string | null;
      const ttl = replies[2 * i + 1]?.[1] as number;
      const where = places.get(id) ?? [];
      if (where.length === 0) return void audit.lost.push(id);
      if (where.length > 1) audit.duplicated.push(id);
      const list = where[0]!;
      if (list === keys.dead) {
        audit.dead++;
        if (doc !== deadDocumentFor(id) || !(ttl > 0)) audit.mismatched.push(id);
        return;
      }
      audit.ready++;
      const decoded = doc === null ? undefined : decodeJob(doc);
      const ok =
        decoded?.ok === true &&
        decoded.job.status === 'pending' &&
        decoded.job.attempts === 0 &&
        ttl === -1 &&
        keys.queuesServed(decoded.job.priority, routeOf(decoded.job.routingKey)).includes(list);
      if (!ok) audit.mismatched.push(id);
    });
  }
  return audit;
}
