/**
 * One health verdict for CI, cron and alerting: Redis latency and memory, the eviction policy, queue and
 * dead-letter depth, error rate, whether live workers actually consume, jobs stuck in processing and
 * scheduled jobs nobody promotes. Each check is ok / warning / critical against the runbook's thresholds
 * (WIRE.md §4) and the operator's maxima. Read-only.
 */
import { isCluster, masterNodes, nodeAddress, type RedisClient } from '../core/connection.js';
import { decodeJob, parseTimestamp } from '../core/codec.js';
import type { Keys } from '../core/keys.js';
import {
  bandLevel,
  DEFAULT_WINDOW_MINUTES,
  RUNBOOK_THRESHOLDS,
  snapshotQueues,
  worstLevel,
  type Level,
  type QueueSnapshot,
  type ReadyQueueStats,
} from './stats.js';
import { formatAgo, workerServes } from './workers.js';

export interface HealthCheck {
  /** Stable identifier: redis, memory, eviction_policy, queue_depth, dead_letter, error_rate, workers, processing, scheduled, keys. */
  name: string;
  status: Level;
  value: number | string | null;
  /** Unit of `value` (ms, percent, jobs, workers, seconds), null for text. */
  unit: string | null;
  /** When the check turns warning / critical. */
  threshold: string | null;
  message: string;
}

export type HealthStatus = Level | 'unreachable';

export interface HealthReport {
  status: HealthStatus;
  checked_at: string;
  prefix: string;
  redis: { version: string | null; latency_ms: number | null };
  checks: HealthCheck[];
}

export interface HealthLimits {
  /** Critical above this many jobs in one ready list (warning from the runbook's 100). */
  maxDepth: number;
  /** Critical above this many dead-lettered jobs (warning from the runbook's 10). */
  maxDeadLetter: number;
  /** Critical above this error rate in percent (warning from the runbook's 2 %). */
  maxErrorRatePercent: number;
  /** Critical when a job sits in processing with no live lease for longer than this. */
  maxProcessingAgeMs: number;
  /** Minutes of per-minute counters the error rate is computed over. */
  windowMinutes: number;
}

export const DEFAULT_HEALTH_LIMITS: HealthLimits = {
  maxDepth: RUNBOOK_THRESHOLDS.queueDepth.critical,
  maxDeadLetter: RUNBOOK_THRESHOLDS.deadLetter.critical,
  maxErrorRatePercent: RUNBOOK_THRESHOLDS.errorRatePercent.critical,
  // Twice the original's default JOB_TIMEOUT (5m): an unleased job older than that is not running.
  maxProcessingAgeMs: 10 * 60_000,
  windowMinutes: DEFAULT_WINDOW_MINUTES,
};

export const MEMORY_THRESHOLDS = { warning: 80, critical: 95 } as const;
export const LATENCY_THRESHOLDS_MS = { warning: 100, critical: 1000 } as const;
/** Workers poll at least every second: a ready job older than this with idle workers is not being taken. */
export const CONSUMPTION_GRACE_MS = 60_000;
/** Live workers recover expired leases and promote due jobs within about a second. */
export const OVERDUE_GRACE_MS = 60_000;
/** How many of the oldest processing entries are examined for the age of unleased jobs. */
export const PROCESSING_SAMPLE = 1000;

export interface HealthOptions extends Partial<HealthLimits> {
  now?: number;
  staleAfterMs?: number;
}

export async function checkHealth(
  redis: RedisClient,
  keys: Keys,
  options: HealthOptions = {},
): Promise<HealthReport> {
  const limits: HealthLimits = { ...DEFAULT_HEALTH_LIMITS, ...definedOnly(options) };
  // Server-level checks on every master of a cluster (one server otherwise); each reports its worst node.
  const servers = await Promise.all(
    masterNodes(redis).map(async (node) => ({
      address: isCluster(redis) ? nodeAddress(node) : undefined,
      latencyMs: await pingLatency(node),
      info: parseInfo(await node.info()),
    })),
  );
  const { latencyMs, info } = servers.reduce((a, b) => (b.latencyMs > a.latencyMs ? b : a));
  const now = options.now ?? Date.now();
  const snapshot = await snapshotQueues(redis, keys, {
    now,
    windowMinutes: limits.windowMinutes,
    staleAfterMs: options.staleAfterMs,
  });
  const checks: HealthCheck[] = [
    worstServerCheck(servers.map((s) => [s.address, latencyCheck(s.latencyMs, s.info)])),
    worstServerCheck(servers.map((s) => [s.address, memoryCheck(s.info)])),
    worstServerCheck(servers.map((s) => [s.address, evictionPolicyCheck(s.info)])),
    queueDepthCheck(snapshot, limits),
    deadLetterCheck(snapshot, limits),
    errorRateCheck(snapshot, limits),
    await workersCheck(redis, keys, snapshot, now),
    await processingCheck(redis, keys, snapshot, limits, now),
    await scheduledCheck(redis, keys, snapshot, now),
  ];
  if (snapshot.stats.problems.length > 0) {
    checks.push({
      name: 'keys',
      status: 'warning',
      value: snapshot.stats.problems.length,
      unit: 'keys',
      threshold: 'any key of the wrong type',
      message: snapshot.stats.problems.join('; '),
    });
  }
  return {
    status: worstLevel(checks.map((c) => c.status)),
    checked_at: new Date(now).toISOString(),
    prefix: keys.prefix,
    redis: { version: info.redis_version ?? null, latency_ms: latencyMs },
    checks,
  };
}

const LEVEL_RANK: Record<Level, number> = { ok: 0, warning: 1, critical: 2 };

/**
 * One check from the same check on several servers (Redis Cluster masters): the worst, its message naming
 * the node (`host:port: …`). A single server's check is returned as is.
 */
function worstServerCheck(checks: Array<[address: string | undefined, check: HealthCheck]>): HealthCheck {
  let worst = checks[0] as [string | undefined, HealthCheck];
  for (const entry of checks) if (LEVEL_RANK[entry[1].status] > LEVEL_RANK[worst[1].status]) worst = entry;
  const [address, check] = worst;
  if (address === undefined) return check;
  return { ...check, message: `${address} (worst of ${checks.length} masters): ${check.message}` };
}

/** The report printed when Redis cannot be reached (or refuses the credentials). */
export function unreachableReport(prefix: string, message: string, now = Date.now()): HealthReport {
  return {
    status: 'unreachable',
    checked_at: new Date(now).toISOString(),
    prefix,
    redis: { version: null, latency_ms: null },
    checks: [{ name: 'redis', status: 'critical', value: null, unit: 'ms', threshold: 'reachable', message }],
  };
}

function definedOnly<T extends object>(options: T): Partial<T> {
  return Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** Median round trip of three PINGs, in milliseconds (two decimals). */
async function pingLatency(redis: Pick<RedisClient, 'ping'>): Promise<number> {
  const samples: number[] = [];
  for (let i = 0; i < 3; i++) {
    const started = process.hrtime.bigint();
    await redis.ping();
    samples.push(Number(process.hrtime.bigint() - started) / 1e6);
  }
  samples.sort((a, b) => a - b);
  return Math.round((samples[1] as number) * 100) / 100;
}

/** `INFO` text as field → value. */
export function parseInfo(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split(/\r?\n/)) {
    if (line === '' || line.startsWith('#')) continue;
    const colon = line.indexOf(':');
    if (colon > 0) out[line.slice(0, colon)] = line.slice(colon + 1);
  }
  return out;
}

export function formatBytes(bytes: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

function count(n: number): string {
  return n.toLocaleString('en-US');
}

function plural(n: number, one: string, many = `${one}s`): string {
  return `${count(n)} ${n === 1 ? one : many}`;
}

function latencyCheck(latencyMs: number, info: Record<string, string>): HealthCheck {
  const status: Level =
    latencyMs > LATENCY_THRESHOLDS_MS.critical
      ? 'critical'
      : latencyMs > LATENCY_THRESHOLDS_MS.warning
        ? 'warning'
        : 'ok';
  return {
    name: 'redis',
    status,
    value: latencyMs,
    unit: 'ms',
    threshold: `warning > ${LATENCY_THRESHOLDS_MS.warning} ms, critical > ${LATENCY_THRESHOLDS_MS.critical} ms`,
    message: `reachable, PING ${latencyMs} ms${info.redis_version ? ` (Redis ${info.redis_version})` : ''}`,
  };
}

/** Percent of maxmemory used, or of the host's memory when Redis has no maxmemory. */
export function memoryUsage(info: Record<string, string>): {
  used: number;
  limit: number;
  percent: number | null;
  limitKind: 'maxmemory' | 'host' | 'none';
} {
  const used = Number(info.used_memory ?? 0);
  const max = Number(info.maxmemory ?? 0);
  const host = Number(info.total_system_memory ?? 0);
  if (max > 0) return { used, limit: max, percent: round1((100 * used) / max), limitKind: 'maxmemory' };
  if (host > 0) return { used, limit: host, percent: round1((100 * used) / host), limitKind: 'host' };
  return { used, limit: 0, percent: null, limitKind: 'none' };
}

export function memoryLevel(percent: number | null): Level {
  if (percent === null) return 'ok';
  if (percent > MEMORY_THRESHOLDS.critical) return 'critical';
  if (percent > MEMORY_THRESHOLDS.warning) return 'warning';
  return 'ok';
}

function round1(n: number): number {
  return Math.round(n * 10) / 10;
}

function memoryCheck(info: Record<string, string>): HealthCheck {
  const usage = memoryUsage(info);
  const status = memoryLevel(usage.percent);
  let message: string;
  if (usage.limitKind === 'maxmemory') {
    message = `${formatBytes(usage.used)} used of maxmemory ${formatBytes(usage.limit)} (${usage.percent}%)`;
  } else if (usage.limitKind === 'host') {
    message = `${formatBytes(usage.used)} used; no maxmemory set, so Redis may use all of the host's ${formatBytes(usage.limit)} (${usage.percent}%)`;
  } else {
    message = `${formatBytes(usage.used)} used; no maxmemory set`;
  }
  if (status !== 'ok') {
    message +=
      '; when it is full, writes fail (OOM): raise maxmemory or let completed jobs expire; do not delete job keys';
  }
  return {
    name: 'memory',
    status,
    value: usage.percent,
    unit: 'percent',
    threshold: `warning > ${MEMORY_THRESHOLDS.warning}%, critical > ${MEMORY_THRESHOLDS.critical}%`,
    message,
  };
}

function evictionPolicyCheck(info: Record<string, string>): HealthCheck {
  const policy = info.maxmemory_policy ?? null;
  const ok = policy === 'noeviction' || policy === null;
  return {
    name: 'eviction_policy',
    status: ok ? 'ok' : 'warning',
    value: policy,
    unit: null,
    threshold: 'anything but noeviction is a warning',
    message:
      policy === null
        ? 'maxmemory-policy not reported by this server'
        : ok
          ? 'noeviction: a full Redis refuses writes instead of dropping queued jobs'
          : `${policy} lets Redis evict keys when memory is full, queued jobs and queues included: set maxmemory-policy noeviction (CONFIG SET and redis.conf)`,
  };
}

function queueDepthCheck(snapshot: QueueSnapshot, limits: HealthLimits): HealthCheck {
  const { ready } = snapshot.stats;
  const band = {
    warning: Math.min(RUNBOOK_THRESHOLDS.queueDepth.warning, limits.maxDepth),
    critical: limits.maxDepth,
  };
  const deepest = ready.queues.reduce<ReadyQueueStats | undefined>(
    (best, q) => (best === undefined || q.depth > best.depth ? q : best),
    undefined,
  );
  const depth = deepest?.depth ?? 0;
  const status = bandLevel(depth, band);
  const over = ready.queues.filter((q) => q.depth >= band.warning);
  let message =
    depth === 0
      ? 'every ready queue is empty'
      : `deepest: ${deepest?.name} with ${plural(depth, 'job')}; ${count(ready.total)} ready in total`;
  if (over.length > 1) message += `; ${over.length} queues at or above ${count(band.warning)}`;
  if (status !== 'ok') message += ': add workers for these queues';
  return {
    name: 'queue_depth',
    status,
    value: depth,
    unit: 'jobs',
    threshold: `warning ≥ ${count(band.warning)}, critical > ${count(band.critical)} jobs in one queue`,
    message,
  };
}

function deadLetterCheck(snapshot: QueueSnapshot, limits: HealthLimits): HealthCheck {
  const depth = snapshot.stats.dead_letter.depth;
  const band = {
    warning: Math.min(RUNBOOK_THRESHOLDS.deadLetter.warning, limits.maxDeadLetter),
    critical: limits.maxDeadLetter,
  };
  const status = bandLevel(depth, band);
  return {
    name: 'dead_letter',
    status,
    value: depth,
    unit: 'jobs',
    threshold: `warning ≥ ${count(band.warning)}, critical > ${count(band.critical)}`,
    message:
      depth === 0
        ? 'the dead-letter queue is empty'
        : `${plural(depth, 'job')} in the dead-letter queue${status === 'ok' ? '' : ': inspect them before requeueing'}`,
  };
}

function errorRateCheck(snapshot: QueueSnapshot, limits: HealthLimits): HealthCheck {
  const rate = snapshot.stats.error_rate;
  const band = {
    warning: Math.min(RUNBOOK_THRESHOLDS.errorRatePercent.warning, limits.maxErrorRatePercent),
    critical: limits.maxErrorRatePercent,
  };
  const threshold = `warning ≥ ${band.warning}%, critical > ${band.critical}% over ${rate.window_minutes} min`;
  if (rate.rate_percent === null) {
    return {
      name: 'error_rate',
      status: 'ok',
      value: null,
      unit: 'percent',
      threshold,
      message: `no job completed or failed in the last ${rate.window_minutes} min`,
    };
  }
  return {
    name: 'error_rate',
    status: bandLevel(rate.rate_percent, band),
    value: rate.rate_percent,
    unit: 'percent',
    threshold,
    message: `${rate.rate_percent}% over ${rate.window_minutes} min: ${count(rate.failed)} failed for good, ${count(rate.completed)} completed (${plural(rate.retried, 'retried attempt')}, not counted as failures)`,
  };
}

/**
 * Workers that are alive must consume: evidence is a job settled in the last two minutes or a job in
 * flight on a worker serving a non-empty queue. Without evidence, idle workers are fine only while the
 * oldest waiting job arrived within the grace period (it may have been pushed a moment ago).
 */
async function workersCheck(
  redis: RedisClient,
  keys: Keys,
  snapshot: QueueSnapshot,
  now: number,
): Promise<HealthCheck> {
  const { stats } = snapshot;
  const live = snapshot.workers.filter((w) => w.state === 'live');
  const base = { name: 'workers', value: live.length, unit: 'workers' };
  const threshold = 'critical: jobs queued and no live worker serves them, or live workers not consuming';
  const liveText = `${plural(live.length, 'live worker')}${stats.workers.stale > 0 ? ` (${stats.workers.stale} stale)` : ''}`;
  const waiting = stats.ready.queues.filter((q) => q.depth > 0);
  if (waiting.length === 0) {
    return { ...base, status: 'ok', threshold, message: `${liveText}; no job is waiting` };
  }
  const total = waiting.reduce((sum, q) => sum + q.depth, 0);
  if (live.length === 0) {
    return {
      ...base,
      status: 'critical',
      threshold,
      message: `no live workers while ${plural(total, 'job')} ${total === 1 ? 'is' : 'are'} queued (bananas workers register heartbeats; original workers do not)`,
    };
  }
  const unserved = waiting.filter((q) => !live.some((w) => workerServes(w, q.priority, q.routing_key)));
  if (unserved.length > 0) {
    const jobs = unserved.reduce((sum, q) => sum + q.depth, 0);
    return {
      ...base,
      status: 'critical',
      threshold,
      message: `${liveText}, but none serves ${unserved.map((q) => q.name).join(', ')} (${plural(jobs, 'job')} waiting)`,
    };
  }
  const serving = live.filter((w) => waiting.some((q) => workerServes(w, q.priority, q.routing_key)));
  const inFlight = serving.reduce((sum, w) => sum + (w.in_flight ?? 0), 0);
  const settled = snapshot.settledLastTwoMinutes;
  if (settled > 0 || inFlight > 0) {
    return {
      ...base,
      status: 'ok',
      threshold,
      message: `${liveText} consuming: ${plural(settled, 'job')} settled in the last 2 min, ${count(inFlight)} in flight, ${count(total)} waiting`,
    };
  }
  const waitedMs = await oldestWait(redis, keys, waiting, now);
  if (waitedMs !== null && waitedMs < CONSUMPTION_GRACE_MS) {
    return {
      ...base,
      status: 'ok',
      threshold,
      message: `${liveText}, idle; the oldest of ${plural(total, 'waiting job')} arrived ${formatAgo(waitedMs)} ago`,
    };
  }
  return {
    ...base,
    status: 'critical',
    threshold,
    message: `workers alive but not consuming: ${liveText}, ${plural(total, 'job')} waiting${waitedMs === null ? '' : ` (oldest for ${formatAgo(waitedMs)})`}, nothing settled in the last 2 min and nothing in flight`,
  };
}

/**
 * How long the job at the head of each waiting queue has been ready: since the latest of its created,
 * updated and scheduled times. Null when no head job has a readable time (then it counts as old).
 */
async function oldestWait(
  redis: RedisClient,
  keys: Keys,
  waiting: ReadyQueueStats[],
  now: number,
): Promise<number | null> {
  const heads = await Promise.all(waiting.slice(0, 50).map((q) => redis.lindex(q.key, -1)));
  const ids = heads.filter((id): id is string => id !== null);
  if (ids.length === 0) return 0;
  const docs = await Promise.all(ids.map((id) => redis.getBuffer(keys.job(id))));
  let oldest: number | null = 0;
  for (const doc of docs) {
    const since = doc === null ? undefined : readySince(doc);
    if (since === undefined) return null;
    oldest = Math.max(oldest ?? 0, now - since);
  }
  return oldest;
}

function readySince(doc: Buffer): number | undefined {
  const decoded = decodeJob(doc);
  if (!decoded.ok) return undefined;
  const { job } = decoded;
  const times = [job.createdAt, job.updatedAt, job.scheduledFor]
    .map((t) => parseTimestamp(t)?.getTime())
    .filter((t): t is number => t !== undefined);
  return times.length === 0 ? undefined : Math.max(...times);
}

/**
 * Jobs stuck in processing: leases past their deadline (live workers return those within a second), and
 * entries without a lease (an original worker's, or orphans), aged by their document's last update. Only
 * the oldest {@link PROCESSING_SAMPLE} entries (the right end of the list) are examined for the latter.
 */
async function processingCheck(
  redis: RedisClient,
  keys: Keys,
  snapshot: QueueSnapshot,
  limits: HealthLimits,
  now: number,
): Promise<HealthCheck> {
  const p = snapshot.stats.processing;
  const threshold = `critical when a job has no live lease for > ${formatAgo(limits.maxProcessingAgeMs)}; warning when expired leases are not recovered within ${formatAgo(OVERDUE_GRACE_MS)}`;
  const base = { name: 'processing', unit: 'seconds', threshold };
  if (p.total === 0 && p.leased === 0) {
    return { ...base, status: 'ok', value: 0, message: 'nothing in processing' };
  }
  const earliest = await redis.zrange(keys.leases, 0, 0, 'WITHSCORES');
  const deadline = earliest.length >= 2 ? Number(earliest[1]) : Infinity;
  const overdueMs = deadline <= now ? now - deadline : 0;

  let unleasedOldestMs = 0;
  let unleasedUnknown = 0;
  if (p.no_lease > 0) {
    const oldest = await redis.lrange(keys.processing, -PROCESSING_SAMPLE, -1);
    const leaseCheck = redis.pipeline();
    for (const id of oldest) leaseCheck.zscore(keys.leases, id);
    const scores = (await leaseCheck.exec()) ?? [];
    const unleased = oldest.filter((_, i) => (scores[i]?.[1] ?? null) === null);
    const docs = redis.pipeline();
    for (const id of unleased) docs.getBuffer(keys.job(id));
    for (const [err, doc] of (await docs.exec()) ?? []) {
      const since = err || doc === null ? undefined : readySince(doc as Buffer);
      if (since === undefined) unleasedUnknown++;
      else unleasedOldestMs = Math.max(unleasedOldestMs, now - since);
    }
  }
  const oldestMs = Math.max(overdueMs, unleasedOldestMs);
  let status: Level = 'ok';
  if (oldestMs > limits.maxProcessingAgeMs) status = 'critical';
  else if (overdueMs > OVERDUE_GRACE_MS) status = 'warning';
  const parts = [
    `${plural(p.total, 'job')} in processing`,
    `${count(p.leased)} leased${p.lease_expired > 0 ? ` (${count(p.lease_expired)} past the lease${overdueMs > 0 ? `, oldest by ${formatAgo(overdueMs)}` : ''})` : ''}`,
    `${count(p.no_lease)} without a lease${unleasedOldestMs > 0 ? ` (oldest untouched for ${formatAgo(unleasedOldestMs)})` : ''}${unleasedUnknown > 0 ? `, ${count(unleasedUnknown)} with no readable time` : ''}`,
  ];
  let message = parts.join(', ');
  if (overdueMs > OVERDUE_GRACE_MS)
    message += ': expired leases are not being recovered (no live bananas worker?)';
  else if (status === 'critical') message += ': jobs without a lease are never recovered automatically';
  return { ...base, status, value: Math.round(oldestMs / 1000), message };
}

/** Due scheduled jobs that nobody promotes (live workers promote them within a second). */
async function scheduledCheck(
  redis: RedisClient,
  keys: Keys,
  snapshot: QueueSnapshot,
  now: number,
): Promise<HealthCheck> {
  const s = snapshot.stats.scheduled;
  const base = {
    name: 'scheduled',
    unit: 'jobs',
    threshold: `warning when due jobs wait > ${formatAgo(OVERDUE_GRACE_MS)} to be promoted`,
  };
  if (s.due === 0) {
    return {
      ...base,
      status: 'ok',
      value: 0,
      message: s.total === 0 ? 'no scheduled jobs' : `${plural(s.total, 'job')} scheduled, none due yet`,
    };
  }
  const flat = await redis.zrange(keys.scheduled, 0, 0, 'WITHSCORES');
  const lateMs = flat.length >= 2 ? Math.max(0, now - Number(flat[1]) * 1000) : 0;
  const late = lateMs > OVERDUE_GRACE_MS;
  return {
    ...base,
    status: late ? 'warning' : 'ok',
    value: s.due,
    message: `${plural(s.due, 'scheduled job')} due, the oldest ${formatAgo(lateMs)} ago${late ? ': nothing is promoting them (no live bananas worker?)' : ''}`,
  };
}
