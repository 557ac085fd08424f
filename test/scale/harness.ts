/**
 * What the failover scenarios check, for any client (cluster, sentinel): where every id stands, polled
 * until everything completed; and a results table printed at the end of the file.
 */
import { decodeJob } from '../../src/core/codec.js';
import type { RedisClient } from '../../src/core/connection.js';
import { pageList } from '../../src/core/iterate.js';
import type { Keys } from '../../src/core/keys.js';
import type { Queue } from '../../src/core/queue.js';

export interface Placement {
  /** Ids whose document is missing or not `completed`. */
  notCompleted: string[];
  /** Ids still referenced from a ready list, processing, the dead-letter list or the scheduled set. */
  referenced: Set<string>;
}

export async function placement(redis: RedisClient, keys: Keys, ids: string[]): Promise<Placement> {
  const notCompleted: string[] = [];
  for (let i = 0; i < ids.length; i += 500) {
    const batch = ids.slice(i, i + 500);
    const docs = await redis.mget(batch.map((id) => keys.job(id)));
    docs.forEach((doc, j) => {
      const decoded = doc === null ? undefined : decodeJob(doc);
      if (!decoded?.ok || decoded.job.status !== 'completed') notCompleted.push(batch[j] as string);
    });
  }
  const referenced = new Set<string>();
  const lists = [
    ...(['high', 'normal', 'low'] as const).flatMap((p) => keys.queuesServed(p, 'default')),
    keys.processing,
    keys.dead,
  ];
  for (const list of lists)
    for await (const page of pageList(redis, list)) for (const id of page) referenced.add(id);
  for (const id of await redis.zrange(keys.scheduled, 0, -1)) referenced.add(id);
  return { notCompleted, referenced };
}

/** Polls until every id completed and nothing references it (or the time runs out); errors count as "not yet". */
export async function waitAllCompleted(
  redis: RedisClient,
  keys: Keys,
  ids: string[],
  timeoutMs: number,
): Promise<Placement> {
  const deadline = Date.now() + timeoutMs;
  let last: Placement | undefined;
  for (;;) {
    try {
      last = await placement(redis, keys, ids);
      if (last.notCompleted.length === 0 && last.referenced.size === 0) return last;
    } catch {
      // A failover in progress: ask again.
    }
    if (Date.now() > deadline) return last ?? { notCompleted: [...ids], referenced: new Set() };
    await new Promise((r) => setTimeout(r, 250));
  }
}

export async function enqueueWork(
  queue: Queue,
  n: number,
  payload = { min_ms: 1, max_ms: 20 },
): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i += 500) {
    const { enqueued } = await queue.enqueueBatch(
      Array.from({ length: Math.min(500, n - i) }, () => ({ name: 'work', payload })),
    );
    ids.push(...enqueued.map((j) => j.id));
  }
  return ids;
}

export interface ScaleResult {
  scenario: string;
  jobs: number;
  lost: number;
  duplicated: number;
  misplaced: number;
  failover_ms: number;
  recovery_ms: number;
  notes?: string;
}

export function printScaleResults(results: ScaleResult[]): void {
  if (results.length === 0) return;
  const header = ['scenario', 'jobs', 'lost', 'duplicated', 'misplaced', 'failover', 'all done after kill'];
  const rows = results.map((r) => [
    r.scenario,
    String(r.jobs),
    String(r.lost),
    String(r.duplicated),
    String(r.misplaced),
    `${(r.failover_ms / 1000).toFixed(1)} s`,
    `${(r.recovery_ms / 1000).toFixed(1)} s`,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] as string).length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === 0 ? c.padEnd(widths[i] as number) : c.padStart(widths[i] as number)))
      .join('  ');
  const notes = results.filter((r) => r.notes).map((r) => `  ${r.scenario}: ${r.notes}`);
  console.log(['', 'Scale failover results', line(header), ...rows.map(line), ...notes, ''].join('\n'));
}
