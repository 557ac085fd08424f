/**
 * The worker registry as heartbeats leave it: `workers` (sorted set: worker id → last heartbeat, Unix ms)
 * and one `worker:<id>` hash per worker, which expires when its heartbeats stop. Read-only.
 */
import type { RedisClient } from '../core/connection.js';
import type { Keys } from '../core/keys.js';

/**
 * A worker is stale when its last heartbeat is older than this: three heartbeats of the default interval
 * (5 s), which is also the shortest lifetime of a worker's hash.
 */
export const DEFAULT_STALE_AFTER_MS = 15_000;

const PAGE_SIZE = 500;

export type WorkerState = 'live' | 'stale';

export interface WorkerInfo {
  id: string;
  state: WorkerState;
  /** Why the worker counts as stale; null when live. */
  stale_reason: string | null;
  /** False when the worker's hash has expired (only its registry entry is left). */
  heartbeat_hash: boolean;
  /** From the hash, or read from the id (`<host>:<pid>:<random>`) when the hash is gone. */
  host: string | null;
  pid: number | null;
  priorities: string[];
  routing_keys: string[];
  /** Job names the worker takes; null = all. */
  job_types: string[] | null;
  concurrency: number | null;
  in_flight: number | null;
  processed: number | null;
  completed: number | null;
  failed: number | null;
  retried: number | null;
  lease_ms: number | null;
  started_at: string | null;
  /** Last heartbeat (from the registry score). */
  last_seen: string;
  last_seen_ago_ms: number;
}

export interface WorkerList {
  checked_at: string;
  stale_after_ms: number;
  live: number;
  stale: number;
  workers: WorkerInfo[];
}

export interface ReadWorkersOptions {
  /** Unix ms; defaults to now. */
  now?: number;
  staleAfterMs?: number;
}

/**
 * Every worker in the registry, live ones first (then by host and id). The registry is read in pages of
 * 500, each page's hashes in one pipeline, so a registry of any size is read with bounded memory per page.
 */
export async function readWorkers(
  redis: RedisClient,
  keys: Keys,
  options: ReadWorkersOptions = {},
): Promise<WorkerList> {
  const now = options.now ?? Date.now();
  const staleAfterMs = options.staleAfterMs ?? DEFAULT_STALE_AFTER_MS;
  const workers: WorkerInfo[] = [];
  for (let start = 0; ; start += PAGE_SIZE) {
    const flat = await redis.zrange(keys.workers, start, start + PAGE_SIZE - 1, 'WITHSCORES');
    if (flat.length === 0) break;
    const page: Array<{ id: string; lastSeen: number }> = [];
    for (let i = 0; i < flat.length; i += 2) {
      page.push({ id: flat[i] as string, lastSeen: Number(flat[i + 1]) });
    }
    const pipeline = redis.pipeline();
    for (const { id } of page) pipeline.hgetall(keys.worker(id));
    const replies = (await pipeline.exec()) ?? [];
    page.forEach(({ id, lastSeen }, i) => {
      const [err, hash] = replies[i] ?? [];
      const fields = !err && hash && typeof hash === 'object' ? (hash as Record<string, string>) : {};
      workers.push(describeWorker(id, lastSeen, fields, now, staleAfterMs));
    });
    if (page.length < PAGE_SIZE) break;
  }
  workers.sort(
    (a, b) =>
      (a.state === 'live' ? 0 : 1) - (b.state === 'live' ? 0 : 1) ||
      (a.host ?? '').localeCompare(b.host ?? '') ||
      a.id.localeCompare(b.id),
  );
  const live = workers.filter((w) => w.state === 'live').length;
  return {
    checked_at: new Date(now).toISOString(),
    stale_after_ms: staleAfterMs,
    live,
    stale: workers.length - live,
    workers,
  };
}

function describeWorker(
  id: string,
  lastSeen: number,
  hash: Record<string, string>,
  now: number,
  staleAfterMs: number,
): WorkerInfo {
  const hasHash = Object.keys(hash).length > 0;
  const ago = Math.max(0, now - lastSeen);
  let staleReason: string | null = null;
  if (!hasHash) staleReason = `heartbeat hash expired (last heartbeat ${formatAgo(ago)} ago)`;
  else if (ago > staleAfterMs) staleReason = `last heartbeat ${formatAgo(ago)} ago`;
  const fromId = /^(.*):(\d+):[0-9a-f]+$/.exec(id);
  return {
    id,
    state: staleReason === null ? 'live' : 'stale',
    stale_reason: staleReason,
    heartbeat_hash: hasHash,
    host: hash.host ?? fromId?.[1] ?? null,
    pid: intOrNull(hash.pid ?? fromId?.[2]),
    priorities: list(hash.priorities),
    routing_keys: list(hash.routing_keys),
    job_types: hasHash && list(hash.job_types).length > 0 ? list(hash.job_types) : null,
    concurrency: intOrNull(hash.concurrency),
    in_flight: intOrNull(hash.in_flight),
    processed: intOrNull(hash.processed),
    completed: intOrNull(hash.completed),
    failed: intOrNull(hash.failed),
    retried: intOrNull(hash.retried),
    lease_ms: intOrNull(hash.lease_ms),
    started_at: hash.started_at ?? null,
    last_seen: Number.isFinite(lastSeen) ? new Date(lastSeen).toISOString() : String(lastSeen),
    last_seen_ago_ms: ago,
  };
}

function list(value: string | undefined): string[] {
  if (!value) return [];
  return value
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

function intOrNull(value: string | undefined): number | null {
  if (value === undefined || !/^-?\d+$/.test(value)) return null;
  const n = Number(value);
  return Number.isSafeInteger(n) ? n : null;
}

/** `42s`, `3m05s`, `2h10m`: short enough for a table cell. */
export function formatAgo(ms: number): string {
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, '0')}s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h${String(m % 60).padStart(2, '0')}m`;
  return `${Math.floor(h / 24)}d`;
}

/**
 * Whether a worker consumes the ready list (`priority`, `routingKey`): the default route's workers also
 * drain the legacy `route:default:queue:<p>` lists.
 */
export function workerServes(worker: WorkerInfo, priority: string, routingKey: string): boolean {
  const routes = worker.routing_keys.length > 0 ? worker.routing_keys : ['default'];
  const priorities = worker.priorities.length > 0 ? worker.priorities : ['high', 'normal', 'low'];
  const rk = routingKey === '' ? 'default' : routingKey;
  return priorities.includes(priority) && routes.includes(rk);
}
