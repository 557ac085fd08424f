/**
 * Queue overview: how deep every queue is, what is being processed, what is scheduled, the dead-letter
 * queue, the workers' utilization and the recent error rate, each graded by the runbook's thresholds; and
 * a look at the jobs at the head of one queue. Read-only: every count is LLEN / ZCARD / ZCOUNT (no list
 * is ever loaded), taken in one MULTI so the figures describe one instant.
 */
import type { ChainableCommander } from 'ioredis';
import type { RedisClient } from '../core/connection.js';
import { decodeJob } from '../core/codec.js';
import { errorMessage, UsageError } from '../core/errors.js';
import { isPriority, isValidRoutingKey, Keys, PRIORITIES, type Priority } from '../core/keys.js';
import { discoverReadyLists, type ReadyList } from './locate.js';
import { DEFAULT_STALE_AFTER_MS, readWorkers, type WorkerInfo } from './workers.js';

export type Level = 'ok' | 'warning' | 'critical';

/** The runbook's thresholds (WIRE.md §4): below `warning` is healthy, above `critical` is critical. */
export const RUNBOOK_THRESHOLDS = {
  queueDepth: { warning: 100, critical: 1000 },
  deadLetter: { warning: 10, critical: 100 },
  errorRatePercent: { warning: 2, critical: 10 },
  /** Healthy 70-90 %; a warning below 50 % or above 95 %. */
  utilizationPercent: { low: 50, high: 95 },
} as const;

/** `value < warning` ok, `warning ≤ value ≤ critical` warning, `value > critical` critical. */
export function bandLevel(value: number, band: { warning: number; critical: number }): Level {
  if (value > band.critical) return 'critical';
  if (value >= band.warning) return 'warning';
  return 'ok';
}

/**
 * Utilization is a snapshot of jobs in flight over slots, not a time average: the runbook's critical level
 * (100 % for more than 5 minutes) cannot be seen in one sample, so 100 % is a warning here.
 */
export function utilizationLevel(percent: number | null): Level | null {
  if (percent === null) return null;
  const { low, high } = RUNBOOK_THRESHOLDS.utilizationPercent;
  return percent < low || percent > high ? 'warning' : 'ok';
}

export function worstLevel(levels: Array<Level | null>): Level {
  if (levels.includes('critical')) return 'critical';
  if (levels.includes('warning')) return 'warning';
  return 'ok';
}

/** Minute buckets expire after 2 hours: a longer window would silently read fewer of them. */
export const MAX_WINDOW_MINUTES = 120;
export const DEFAULT_WINDOW_MINUTES = 5;

export interface ReadyQueueStats {
  /**
   * `high`, `gpu:high`, as `queue peek` takes them; legacy lists read `default:high (legacy)` (peek
   * them by their key).
   */
  name: string;
  key: string;
  priority: Priority;
  routing_key: string;
  /** A `route:default:queue:<p>` list some original builds wrote (default-route workers drain it). */
  legacy: boolean;
  depth: number;
  level: Level;
}

export interface QueueStats {
  prefix: string;
  checked_at: string;
  ready: {
    total: number;
    /** The level of the deepest ready list. */
    level: Level;
    queues: ReadyQueueStats[];
  };
  processing: {
    key: string;
    total: number;
    /** Ids a bananas worker holds a lease for. */
    leased: number;
    /** Leases past their deadline (live workers return these to their queue within a second). */
    lease_expired: number;
    /**
     * Entries without a lease (taken by an original worker, or orphaned): never moved automatically.
     * Computed as list length minus leases, so exact only while the two agree (bananas keeps them so).
     */
    no_lease: number;
  };
  scheduled: { key: string; total: number; due: number; later: number };
  dead_letter: { key: string; depth: number; level: Level };
  workers: {
    live: number;
    stale: number;
    /** Sums over live workers. */
    concurrency: number;
    in_flight: number;
    /** in_flight / concurrency over live workers, in percent; null without live workers. */
    utilization_percent: number | null;
    level: Level | null;
  };
  error_rate: {
    window_minutes: number;
    completed: number;
    /** Jobs that failed for good (dead-lettered). Retried attempts are not failures. */
    failed: number;
    retried: number;
    released: number;
    /** failed / (completed + failed) in percent; null when nothing settled in the window. */
    rate_percent: number | null;
    level: Level | null;
  };
  /** Lifetime counters written by bananas workers (`stats` hash). */
  lifetime: { completed: number; failed: number; retried: number; released: number };
  /** Keys that could not be read as expected (e.g. a queue key of the wrong type). */
  problems: string[];
}

export interface StatsOptions {
  /** Unix ms; defaults to now. */
  now?: number;
  windowMinutes?: number;
  staleAfterMs?: number;
  /** Ready lists to count (default: discovered by SCAN). */
  readyLists?: ReadyList[];
}

/** What {@link collectQueueStats} reads, plus the details `health` needs. */
export interface QueueSnapshot {
  stats: QueueStats;
  workers: WorkerInfo[];
  /** completed + failed + retried in the current and the previous minute bucket. */
  settledLastTwoMinutes: number;
}

export async function collectQueueStats(
  redis: RedisClient,
  keys: Keys,
  options: StatsOptions = {},
): Promise<QueueStats> {
  return (await snapshotQueues(redis, keys, options)).stats;
}

/**
 * Runs read commands as one MULTI, so the figures are from one instant. Redis refuses every command
 * queued in a MULTI while it is over `maxmemory`, reads included: then they go as a plain pipeline, so
 * stats, peek and health still work on a full Redis, when they are needed most.
 */
async function readTogether(
  redis: RedisClient,
  queue: (batch: ChainableCommander) => void,
): Promise<Array<[Error | null, unknown]>> {
  const tx = redis.multi();
  queue(tx);
  try {
    return (await tx.exec()) ?? [];
  } catch (err) {
    if (!/^OOM\b/.test(errorMessage(err))) throw err;
    const pipeline = redis.pipeline();
    queue(pipeline);
    return (await pipeline.exec()) ?? [];
  }
}

const COUNTERS = ['completed', 'failed', 'retried', 'released'] as const;
type Counters = Record<(typeof COUNTERS)[number], number>;

export async function snapshotQueues(
  redis: RedisClient,
  keys: Keys,
  options: StatsOptions = {},
): Promise<QueueSnapshot> {
  const now = options.now ?? Date.now();
  const windowMinutes = assertWindowMinutes(options.windowMinutes ?? DEFAULT_WINDOW_MINUTES);
  const lists = options.readyLists ?? (await discoverReadyLists(redis, keys));
  const currentMinute = Math.floor(now / 60_000);
  const bucketCount = Math.max(windowMinutes, 2);
  const minutes = Array.from({ length: bucketCount }, (_, i) => currentMinute - i);

  const replies = await readTogether(redis, (tx) => {
    for (const list of lists) tx.llen(list.key);
    tx.llen(keys.processing);
    tx.zcard(keys.leases);
    tx.zcount(keys.leases, '-inf', now);
    tx.zcard(keys.scheduled);
    tx.zcount(keys.scheduled, '-inf', now / 1000);
    tx.llen(keys.dead);
    tx.hmget(keys.stats, ...COUNTERS);
    for (const minute of minutes) tx.hmget(keys.statsMinute(minute), ...COUNTERS);
  });

  const problems: string[] = [];
  let at = 0;
  const next = <T>(key: string, fallback: T): T => {
    const [err, value] = replies[at++] ?? [];
    if (err) {
      problems.push(`${key}: ${oneLine(err.message)}`);
      return fallback;
    }
    return value as T;
  };

  const queues: ReadyQueueStats[] = lists.map((list) => {
    const depth = next<number>(list.key, 0);
    return {
      name: readyListName(list),
      key: list.key,
      priority: list.priority,
      routing_key: list.routingKey,
      legacy: list.legacy,
      depth,
      level: bandLevel(depth, RUNBOOK_THRESHOLDS.queueDepth),
    };
  });
  // Routed lists vanish when emptied; keep the default route's three even when empty, drop the rest.
  const shown = queues.filter((q) => q.depth > 0 || (q.routing_key === 'default' && !q.legacy));
  const processingTotal = next<number>(keys.processing, 0);
  const leased = next<number>(keys.leases, 0);
  const leaseExpired = next<number>(keys.leases, 0);
  const scheduledTotal = next<number>(keys.scheduled, 0);
  const scheduledDue = next<number>(keys.scheduled, 0);
  const deadDepth = next<number>(keys.dead, 0);
  const lifetime = counters(next<Array<string | null>>(keys.stats, []));
  const buckets = minutes.map((minute) => counters(next<Array<string | null>>(keys.statsMinute(minute), [])));

  const window = sumCounters(buckets.slice(0, windowMinutes));
  const recent = sumCounters(buckets.slice(0, 2));
  const settled = window.completed + window.failed;
  const ratePercent = settled > 0 ? round2((100 * window.failed) / settled) : null;

  const registry = await readWorkers(redis, keys, {
    now,
    staleAfterMs: options.staleAfterMs ?? DEFAULT_STALE_AFTER_MS,
  });
  const live = registry.workers.filter((w) => w.state === 'live');
  const concurrency = live.reduce((sum, w) => sum + (w.concurrency ?? 0), 0);
  const inFlight = live.reduce((sum, w) => sum + (w.in_flight ?? 0), 0);
  const utilization = concurrency > 0 ? round2((100 * inFlight) / concurrency) : null;

  const stats: QueueStats = {
    prefix: keys.prefix,
    checked_at: new Date(now).toISOString(),
    ready: {
      total: queues.reduce((sum, q) => sum + q.depth, 0),
      level: bandLevel(Math.max(0, ...queues.map((q) => q.depth)), RUNBOOK_THRESHOLDS.queueDepth),
      queues: shown,
    },
    processing: {
      key: keys.processing,
      total: processingTotal,
      leased,
      lease_expired: leaseExpired,
      no_lease: Math.max(0, processingTotal - leased),
    },
    scheduled: {
      key: keys.scheduled,
      total: scheduledTotal,
      due: scheduledDue,
      later: Math.max(0, scheduledTotal - scheduledDue),
    },
    dead_letter: {
      key: keys.dead,
      depth: deadDepth,
      level: bandLevel(deadDepth, RUNBOOK_THRESHOLDS.deadLetter),
    },
    workers: {
      live: registry.live,
      stale: registry.stale,
      concurrency,
      in_flight: inFlight,
      utilization_percent: utilization,
      level: utilizationLevel(utilization),
    },
    error_rate: {
      window_minutes: windowMinutes,
      ...window,
      rate_percent: ratePercent,
      level: ratePercent === null ? null : bandLevel(ratePercent, RUNBOOK_THRESHOLDS.errorRatePercent),
    },
    lifetime,
    problems,
  };
  return {
    stats,
    workers: registry.workers,
    settledLastTwoMinutes: recent.completed + recent.failed + recent.retried,
  };
}

export function assertWindowMinutes(minutes: number): number {
  if (!Number.isInteger(minutes) || minutes < 1 || minutes > MAX_WINDOW_MINUTES) {
    throw new UsageError(
      `the window must be 1 to ${MAX_WINDOW_MINUTES} whole minutes (the per-minute counters are kept for 2 hours)`,
    );
  }
  return minutes;
}

/** A `--window` duration (ms) as whole minutes; refuses anything else with a usage error. */
export function windowMinutesFromMs(ms: number, flag = '--window'): number {
  if (ms % 60_000 !== 0 || ms < 60_000 || ms > MAX_WINDOW_MINUTES * 60_000) {
    throw new UsageError(
      `${flag} must be whole minutes from 1m to 2h (the per-minute counters are kept for 2 hours)`,
    );
  }
  return ms / 60_000;
}

export function readyListName(list: Pick<ReadyList, 'priority' | 'routingKey' | 'legacy'>): string {
  if (list.legacy) return `default:${list.priority} (legacy)`;
  return list.routingKey === 'default' ? list.priority : `${list.routingKey}:${list.priority}`;
}

function counters(values: Array<string | null>): Counters {
  const out = { completed: 0, failed: 0, retried: 0, released: 0 };
  COUNTERS.forEach((field, i) => {
    const n = Number(values[i] ?? 0);
    out[field] = Number.isFinite(n) ? n : 0;
  });
  return out;
}

function sumCounters(list: Counters[]): Counters {
  const out = { completed: 0, failed: 0, retried: 0, released: 0 };
  for (const c of list) for (const field of COUNTERS) out[field] += c[field];
  return out;
}

function round2(n: number): number {
  return Math.round(n * 100) / 100;
}

function oneLine(text: string): string {
  return text.replace(/\s+/g, ' ').trim();
}

// ---------------------------------------------------------------------------------------------------
// queue peek

export type QueueKind = 'ready' | 'processing' | 'dead' | 'scheduled';

export interface QueueTarget {
  kind: QueueKind;
  key: string;
  /** As the operator may type it. */
  name: string;
}

export const MAX_PEEK_LIMIT = 1000;

/** A queue name for messages: quoted, and cut short (a 10 KB argument must still make one line). */
function quoted(input: string): string {
  return JSON.stringify(input.length > 80 ? `${input.slice(0, 80)}…` : input);
}

/**
 * What `<queue>` names: `high|normal|low` (default route), `<routing-key>:<priority>`, `processing`,
 * `dead` (or `dlq`), `scheduled`, or the full key of one of them under the prefix.
 */
export function resolveQueue(keys: Keys, input: string): QueueTarget {
  const unknown = () =>
    new UsageError(
      `unknown queue ${quoted(input)}: use high, normal, low, <routing-key>:<priority>, processing, dead, scheduled, or a full key such as ${keys.queue('high')}`,
    );
  if (isPriority(input)) return { kind: 'ready', key: keys.queue(input), name: input };
  if (input === 'processing') return { kind: 'processing', key: keys.processing, name: input };
  if (input === 'dead' || input === 'dlq') return { kind: 'dead', key: keys.dead, name: 'dead' };
  if (input === 'scheduled') return { kind: 'scheduled', key: keys.scheduled, name: input };
  // A full key name: accept exactly the keys bananas would build (checked first: with a prefix without
  // a colon, a full key could also read as `<routing-key>:<priority>`).
  const exact: QueueTarget[] = [
    { kind: 'processing', key: keys.processing, name: 'processing' },
    { kind: 'dead', key: keys.dead, name: 'dead' },
    { kind: 'scheduled', key: keys.scheduled, name: 'scheduled' },
    ...PRIORITIES.flatMap((p) => [
      { kind: 'ready' as const, key: keys.queue(p), name: p },
      { kind: 'ready' as const, key: keys.legacyDefaultRouteQueue(p), name: `default:${p} (legacy)` },
    ]),
  ];
  const match = exact.find((t) => t.key === input);
  if (match) return match;
  const route = /^route:([^:]+):queue:([a-z]+)$/.exec(
    input.startsWith(keys.prefix) ? input.slice(keys.prefix.length) : '',
  );
  if (route) {
    const [, rk, priority] = route as unknown as [string, string, string];
    if (isPriority(priority) && isValidRoutingKey(rk) && keys.queue(priority, rk) === input) {
      return { kind: 'ready', key: input, name: `${rk}:${priority}` };
    }
  }
  const routed = /^([^:]+):([^:]+)$/.exec(input);
  if (routed) {
    const [, rk, priority] = routed as unknown as [string, string, string];
    if (isPriority(priority) && isValidRoutingKey(rk)) {
      return { kind: 'ready', key: keys.queue(priority, rk), name: input };
    }
  }
  throw unknown();
}

export type DocumentState = 'ok' | 'missing' | 'corrupt' | 'stub';

export interface PeekedJob {
  /** 0 = the next one out (the consumer end: right end of a list, lowest score of the scheduled set). */
  position: number;
  id: string;
  document: DocumentState;
  /** What is wrong with the document (null when nothing is). */
  problem: string | null;
  name: string | null;
  priority: string | null;
  status: string | null;
  attempts: number | null;
  max_retries: number | null;
  created_at: string | null;
  routing_key: string | null;
  /** Scheduled set only: when the job becomes ready. */
  run_at?: string;
  /** Processing list only: the lease deadline (null: no lease) and the worker holding it. */
  lease_expires_at?: string | null;
  lease_owner?: string | null;
}

export interface PeekResult {
  queue: string;
  key: string;
  kind: QueueKind;
  /** Entries in the queue (the list length or the set size). */
  length: number;
  limit: number;
  jobs: PeekedJob[];
}

/** The `limit` jobs at the head of a queue (next out first), with their documents checked. */
export async function peekQueue(
  redis: RedisClient,
  keys: Keys,
  target: QueueTarget,
  limit: number,
): Promise<PeekResult> {
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PEEK_LIMIT) {
    throw new UsageError(`--limit must be 1 to ${MAX_PEEK_LIMIT}`);
  }
  const isSet = target.kind === 'scheduled';
  const expected = isSet ? 'zset' : 'list';
  const replies = await readTogether(redis, (tx) => {
    tx.type(target.key);
    if (isSet) tx.zcard(target.key).zrange(target.key, 0, limit - 1, 'WITHSCORES');
    else tx.llen(target.key).lrange(target.key, -limit, -1);
  });
  const type = replies[0]?.[1] as string;
  if (type !== 'none' && type !== expected) {
    throw new UsageError(`${target.key} holds a ${type}, not a ${expected} of job ids; it is not a queue`);
  }
  const length = (replies[1]?.[1] as number | undefined) ?? 0;
  const raw = (replies[2]?.[1] as string[] | undefined) ?? [];
  const entries: Array<{ id: string; score?: string }> = [];
  if (isSet) {
    for (let i = 0; i < raw.length; i += 2) entries.push({ id: raw[i] as string, score: raw[i + 1] });
  } else {
    // LRANGE returns left to right; the consumer takes from the right.
    for (const id of raw.reverse()) entries.push({ id });
  }

  const pipeline = redis.pipeline();
  for (const { id } of entries) {
    pipeline.getBuffer(keys.job(id));
    if (target.kind === 'processing') {
      pipeline.zscore(keys.leases, id);
      pipeline.hget(keys.leaseOwners, id);
    }
  }
  const docs = (await pipeline.exec()) ?? [];
  const stride = target.kind === 'processing' ? 3 : 1;
  const jobs = entries.map(({ id, score }, position) => {
    const [err, stored] = docs[position * stride] ?? [];
    const job = describeDocument(id, err ? null : (stored as Buffer | null));
    if (err) Object.assign(job, { document: 'corrupt', problem: oneLine(err.message) });
    const peeked: PeekedJob = { position, ...job };
    if (score !== undefined) peeked.run_at = scoreToIso(score);
    if (target.kind === 'processing') {
      const deadline = docs[position * stride + 1]?.[1] as string | null;
      peeked.lease_expires_at = deadline === null ? null : new Date(Number(deadline)).toISOString();
      peeked.lease_owner = (docs[position * stride + 2]?.[1] as string | null) ?? null;
    }
    return peeked;
  });
  return { queue: target.name, key: target.key, kind: target.kind, length, limit, jobs };
}

export function describeDocument(id: string, stored: Buffer | null): Omit<PeekedJob, 'position'> {
  const unreadable = (document: DocumentState, problem: string) => ({
    id,
    document,
    problem,
    name: null,
    priority: null,
    status: null,
    attempts: null,
    max_retries: null,
    created_at: null,
    routing_key: null,
  });
  if (stored === null) return unreadable('missing', 'no job document (Job data not found)');
  const decoded = decodeJob(stored);
  if (!decoded.ok) return unreadable(decoded.kind === 'stub' ? 'stub' : 'corrupt', oneLine(decoded.reason));
  const { job } = decoded;
  return {
    id,
    document: 'ok',
    problem: job.id === id ? null : `the document's id is ${JSON.stringify(job.id)}`,
    name: job.name,
    priority: job.priority,
    status: job.status,
    attempts: job.attempts,
    max_retries: job.maxRetries,
    created_at: job.createdAt === '' ? null : job.createdAt,
    routing_key: job.routingKey === '' ? 'default' : job.routingKey,
  };
}

/** A scheduled-set score (Unix seconds, integer or fractional) as an ISO time. */
export function scoreToIso(score: string): string {
  const ms = Math.round(Number(score) * 1000);
  return Number.isFinite(ms) ? new Date(ms).toISOString() : score;
}

// ---------------------------------------------------------------------------------------------------
// queue stats --watch

/**
 * Stats for repeated sampling (`queue stats --watch`): the SCAN that discovers routed lists runs at most
 * every `rediscoverEveryMs` (default 30 s), not on every tick; the counts are fresh each time.
 */
export function statsSampler(
  redis: RedisClient,
  keys: Keys,
  options: { windowMinutes?: number; rediscoverEveryMs?: number } = {},
): () => Promise<QueueStats> {
  let lists: ReadyList[] | undefined;
  let discoveredAt = 0;
  const every = options.rediscoverEveryMs ?? 30_000;
  return async () => {
    if (lists === undefined || Date.now() - discoveredAt >= every) {
      lists = await discoverReadyLists(redis, keys);
      discoveredAt = Date.now();
    }
    return collectQueueStats(redis, keys, { windowMinutes: options.windowMinutes, readyLists: lists });
  };
}
