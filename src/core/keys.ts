/**
 * Every Redis key bananas reads or writes is built here, and nowhere else (docs/redis-keys.md lists them).
 * The original layout (job documents, priority lists, processing, dead, scheduled, results, schedules)
 * is kept byte for byte; the keys bananas adds live under the same prefix.
 */
import { UsageError } from './errors.js';

export const PRIORITIES = ['high', 'normal', 'low'] as const;
export type Priority = (typeof PRIORITIES)[number];

export const DEFAULT_PREFIX = 'bananas:';
export const DEFAULT_ROUTE = 'default';
const ROUTING_KEY_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

export function isPriority(value: string): value is Priority {
  return (PRIORITIES as readonly string[]).includes(value);
}

/** Unknown or missing priorities are treated as `normal`, as every original reader does. */
export function normalizePriority(value: unknown): Priority {
  return typeof value === 'string' && isPriority(value) ? value : 'normal';
}

/** `""`, absent and `default` all mean the default route. */
export function normalizeRoutingKey(value: unknown): string {
  if (typeof value !== 'string' || value === '') return DEFAULT_ROUTE;
  return value;
}

export function isValidRoutingKey(value: string): boolean {
  return ROUTING_KEY_PATTERN.test(value);
}

/**
 * The route a job with this routing key runs on, as the Lua fragment's bananasRouteOf reads it: a valid
 * routing key is its own route; anything else (absent, "", invalid) is the default route.
 */
export function routeOf(routingKey: unknown): string {
  return typeof routingKey === 'string' && isValidRoutingKey(routingKey) ? routingKey : DEFAULT_ROUTE;
}

export function assertRoutingKey(value: string): string {
  if (!isValidRoutingKey(value)) {
    throw new UsageError(
      `invalid routing key ${JSON.stringify(value)}: use 1-64 characters of A-Z a-z 0-9 _ -`,
    );
  }
  return value;
}

export function assertPrefix(prefix: string): string {
  if (prefix === '' || /[\s*?[\]]/.test(prefix)) {
    throw new UsageError(
      `invalid prefix ${JSON.stringify(prefix)}: it must be non-empty, without spaces or glob characters (* ? [ ])`,
    );
  }
  return prefix;
}

/**
 * The hash tag Redis Cluster hashes a key by (the text between the first `{` and the next `}`, when not
 * empty), or undefined. Every key bananas builds starts with the prefix, so a prefix that carries a tag
 * puts the whole deployment in one hash slot.
 */
export function hashTagOf(prefix: string): string | undefined {
  const open = prefix.indexOf('{');
  if (open < 0) return undefined;
  const close = prefix.indexOf('}', open + 1);
  if (close < 0 || close === open + 1) return undefined;
  return prefix.slice(open + 1, close);
}

/**
 * In Redis Cluster the prefix must carry a hash tag (`{bananas}:`): the scripts move ids between lists
 * and documents of one deployment atomically, which Redis Cluster only allows within one hash slot.
 */
export function assertClusterPrefix(prefix: string): string {
  assertPrefix(prefix);
  if (hashTagOf(prefix) === undefined) {
    const name = prefix.replace(/[{}]/g, '').replace(/:+$/, '') || 'bananas';
    throw new UsageError(
      `the prefix ${JSON.stringify(prefix)} has no hash tag, which Redis Cluster needs to keep a deployment's keys in one slot: pass --prefix '{${name}}:' (or BANANAS_PREFIX='{${name}}:'), and see "Running at scale" in the README to move existing keys`,
    );
  }
  return prefix;
}

export class Keys {
  readonly prefix: string;

  constructor(prefix: string = DEFAULT_PREFIX) {
    this.prefix = assertPrefix(prefix);
  }

  job(id: string): string {
    return `${this.prefix}job:${id}`;
  }

  /** Pattern for SCAN over job documents; ids are matched by SCAN only, never passed to KEYS. */
  jobPattern(): string {
    return `${escapeGlob(this.prefix)}job:*`;
  }

  /** The ready list for a priority and routing key (WIRE: default route → `queue:<p>`). */
  queue(priority: Priority, routingKey: string = DEFAULT_ROUTE): string {
    const rk = normalizeRoutingKey(routingKey);
    if (rk === DEFAULT_ROUTE) return `${this.prefix}queue:${priority}`;
    return `${this.prefix}route:${rk}:queue:${priority}`;
  }

  /** Lists some original builds wrote for the default route; workers drain them too. */
  legacyDefaultRouteQueue(priority: Priority): string {
    return `${this.prefix}route:${DEFAULT_ROUTE}:queue:${priority}`;
  }

  /** Every ready list a worker serving `routingKey` consumes at `priority`, in the order it takes them. */
  queuesServed(priority: Priority, routingKey: string): string[] {
    const rk = normalizeRoutingKey(routingKey);
    if (rk === DEFAULT_ROUTE) return [this.queue(priority), this.legacyDefaultRouteQueue(priority)];
    return [this.queue(priority, rk)];
  }

  get processing(): string {
    return `${this.prefix}queue:processing`;
  }

  get dead(): string {
    return `${this.prefix}queue:dead`;
  }

  get scheduled(): string {
    return `${this.prefix}queue:scheduled`;
  }

  /** Sorted set: id → lease deadline (Unix ms) for ids in `processing` that a bananas worker holds. */
  get leases(): string {
    return `${this.prefix}processing:leases`;
  }

  /** Hash: id → worker id that holds the lease. */
  get leaseOwners(): string {
    return `${this.prefix}processing:owners`;
  }

  /** List used only to wake idle workers of a route; holds at most one token. */
  signal(routingKey: string = DEFAULT_ROUTE): string {
    const rk = normalizeRoutingKey(routingKey);
    if (rk === DEFAULT_ROUTE) return `${this.prefix}signal`;
    return `${this.prefix}route:${rk}:signal`;
  }

  result(id: string): string {
    return `${this.prefix}result:${id}`;
  }

  resultNotify(id: string): string {
    return `${this.prefix}result:notify:${id}`;
  }

  /** Sorted set: worker id → last heartbeat (Unix ms). */
  get workers(): string {
    return `${this.prefix}workers`;
  }

  /** Hash describing one worker; expires when its heartbeats stop. */
  worker(workerId: string): string {
    return `${this.prefix}worker:${workerId}`;
  }

  /** Hash of lifetime counters (completed, retried, failed, released) written by settlements. */
  get stats(): string {
    return `${this.prefix}stats`;
  }

  /** Hash of counters for one minute (Unix minute); expires after two hours. */
  statsMinute(minute: number): string {
    return `${this.prefix}stats:minute:${minute}`;
  }

  /**
   * Temporary working keys of one `scan corrupt` run (`<prefix>scan:<run-id>:<part>`): reference index,
   * candidate sets, repair plan. They carry a TTL and are deleted when the run ends.
   */
  scanTemp(runId: string, part: string): string {
    return `${this.prefix}scan:${runId}:${part}`;
  }

  schedule(scheduleId: string): string {
    return `${this.prefix}schedules:${scheduleId}`;
  }

  scheduleLock(scheduleId: string): string {
    return `${this.prefix}schedule_lock:${scheduleId}`;
  }
}

/** Escapes SCAN/KEYS glob metacharacters so a prefix or id is matched literally. */
export function escapeGlob(text: string): string {
  return text.replace(/[*?[\]\\]/g, (c) => `\\${c}`);
}
