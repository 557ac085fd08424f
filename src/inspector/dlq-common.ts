/**
 * Pieces shared by the dead-letter queue operations (inspect, requeue, backup, restore, clear): reading
 * the list in bounded pages, classifying entries (job, stub, corrupt, missing), filters, and a compact set
 * of the ids one sweep has already handled.
 *
 * The dead-letter list is LPUSHed: index 0 (the head) is the newest entry, the tail the oldest. Sweeps that
 * change it work from the tail with negative indexes, which entries dead-lettered meanwhile (pushed at the
 * head) never shift.
 */
import { randomBytes } from 'node:crypto';
import type { RedisClient } from '../core/connection.js';
import { decodeJob, parseTimestamp, type Job } from '../core/codec.js';
import { UsageError } from '../core/errors.js';
import { lrangeFromRight } from '../core/iterate.js';
import type { Keys } from '../core/keys.js';
import { assertJobId } from '../core/queue.js';

export type EntryState = 'job' | 'stub' | 'corrupt' | 'missing';

export interface DeadEntry {
  id: string;
  /** The exact stored bytes; null when there is no document. */
  document: Buffer | null;
  /** Where it was read: a negative index from the tail (-1 = the oldest entry). */
  index: number;
}

export interface ClassifiedEntry extends DeadEntry {
  state: EntryState;
  /** Set when `state` is `job`. */
  job?: Job;
  /**
   * The text filters match and totals group: the job's last error; a stub's error; for an unreadable
   * document why it is unreadable; `document missing` when there is none.
   */
  error: string;
  /** Why the entry is not a job (stub, corrupt, missing). */
  reason?: string;
}

const MISSING_DOCUMENT_ERROR = 'document missing';

export function classifyEntry(entry: DeadEntry): ClassifiedEntry {
  // Objects of one shape, built field by field: this runs for every entry of a million-entry sweep.
  const { id, document, index } = entry;
  if (document === null) {
    return {
      id,
      document,
      index,
      state: 'missing',
      job: undefined,
      error: MISSING_DOCUMENT_ERROR,
      reason: 'the job document does not exist',
    };
  }
  const decoded = decodeJob(document);
  if (decoded.ok)
    return {
      id,
      document,
      index,
      state: 'job',
      job: decoded.job,
      error: decoded.job.error,
      reason: undefined,
    };
  if (decoded.kind === 'stub') {
    return {
      id,
      document,
      index,
      state: 'stub',
      job: undefined,
      error: decoded.stub?.error ?? decoded.reason,
      reason: decoded.reason,
    };
  }
  return {
    id,
    document,
    index,
    state: 'corrupt',
    job: undefined,
    error: decoded.reason,
    reason: decoded.reason,
  };
}

// ---------------------------------------------------------------------------------------------------
// Filters
// ---------------------------------------------------------------------------------------------------

export interface DeadLetterFilter {
  /** Only jobs with one of these names. */
  names?: string[];
  /** Only entries whose error contains this text (case-insensitive). */
  grep?: string;
  /** Only jobs that failed (updated_at) at most this many milliseconds ago. */
  sinceMs?: number;
}

export function hasFilter(filter: DeadLetterFilter): boolean {
  return (filter.names?.length ?? 0) > 0 || filter.grep !== undefined || filter.sinceMs !== undefined;
}

/** Refuses filters that cannot mean anything (empty name or text, a zero duration). */
export function assertFilter(filter: DeadLetterFilter): void {
  for (const name of filter.names ?? []) {
    if (name.trim() === '') throw new UsageError('--name needs a job name');
  }
  if (filter.grep !== undefined && filter.grep === '') throw new UsageError('--grep needs some text');
  if (filter.sinceMs !== undefined && !(filter.sinceMs > 0)) {
    throw new UsageError('--since needs a duration greater than 0 (e.g. 30m, 24h)');
  }
}

/**
 * Entries without a name or a failure time (stubs, unreadable or missing documents) never match `names`
 * or `sinceMs`; `grep` matches them on the error text they show.
 */
export function compileFilter(filter: DeadLetterFilter, now: Date): (entry: ClassifiedEntry) => boolean {
  const names = filter.names && filter.names.length > 0 ? new Set(filter.names) : undefined;
  const needle = filter.grep?.toLowerCase();
  const since = filter.sinceMs === undefined ? undefined : now.getTime() - filter.sinceMs;
  return (entry) => {
    if (names && !(entry.job && names.has(entry.job.name))) return false;
    if (needle !== undefined && !entry.error.toLowerCase().includes(needle)) return false;
    if (since !== undefined) {
      const failedAt = parseTimestamp(entry.job?.updatedAt)?.getTime();
      if (failedAt === undefined || failedAt < since) return false;
    }
    return true;
  };
}

// ---------------------------------------------------------------------------------------------------
// Ids given on the command line
// ---------------------------------------------------------------------------------------------------

export const MAX_IDS_PER_CALL = 1000;

/** An exact job id as an operator types it: no glob characters (ids are never patterns here). */
export function assertExactId(id: string): string {
  if (/[*?[\]]/.test(id)) {
    throw new UsageError(
      `invalid job id ${JSON.stringify(id.slice(0, 80))}: ids are exact, glob characters (* ? [ ]) are not supported`,
    );
  }
  return assertJobId(id);
}

// ---------------------------------------------------------------------------------------------------
// Reading the list
// ---------------------------------------------------------------------------------------------------

/**
 * Reads up to `count` entries starting `skip` entries from the tail, with their documents (one LRANGE,
 * one MGET). Returns them tail first (oldest first).
 */
export async function readFromTail(
  redis: RedisClient,
  keys: Keys,
  skip: number,
  count: number,
): Promise<DeadEntry[]> {
  const ids = await readIdsFromTail(redis, keys, skip, count);
  return withDocuments(
    ids,
    ids.length === 0 ? [] : await redis.mgetBuffer(ids.map((id) => keys.job(id))),
    skip,
  );
}

/** The ids of up to `count` entries starting `skip` entries from the tail, as LRANGE returns them. */
export function readIdsFromTail(
  redis: RedisClient,
  keys: Keys,
  skip: number,
  count: number,
): Promise<string[]> {
  return lrangeFromRight(redis, keys.dead, skip, count);
}

/** Pairs ids read by {@link readIdsFromTail} with their documents, tail first, with their positions. */
export function withDocuments(ids: string[], documents: Array<Buffer | null>, skip: number): DeadEntry[] {
  const out: DeadEntry[] = [];
  for (let j = ids.length - 1; j >= 0; j--) {
    out.push({ id: ids[j] as string, document: documents[j] ?? null, index: -(skip + ids.length - j) });
  }
  return out;
}

/**
 * A value no id can take, written over entries a script is about to remove (then one LREM removes them
 * all); it never outlives the script.
 */
export function tombstone(): string {
  return `\u0000bananas-dlq-tombstone:${randomBytes(12).toString('hex')}`;
}

// ---------------------------------------------------------------------------------------------------
// Bounded bookkeeping
// ---------------------------------------------------------------------------------------------------

/**
 * The ids one sweep has handled, so it never handles an id twice (a duplicate entry, or a job that failed
 * again and came back). Kept as 64-bit hashes (two cyrb53-style 32-bit lanes) in an open-addressing
 * table: 8 bytes per slot at most half full, so a million ids cost 16 MB instead of the ~100 MB a Set of
 * strings would. A hash collision (odds about 1 in 30 million for a million ids) can only make a sweep
 * leave one job where it is, never move one twice.
 */
export class SeenIds {
  private table: Uint32Array;
  private size = 0;
  private h1 = 0;
  private h2 = 0;

  /** `expected`: how many ids to make room for at once (growing later copies the table). */
  constructor(expected = 0) {
    let slots = 1 << 12;
    while (slots < expected * 2) slots *= 2;
    this.table = new Uint32Array(2 * slots);
  }

  get count(): number {
    return this.size;
  }

  /** Adds `id`; returns false if it was already there. */
  add(id: string): boolean {
    if ((this.size + 1) * 4 > this.table.length) this.grow();
    this.hash(id);
    const inserted = SeenIds.insert(this.table, this.h1, this.h2);
    if (inserted) this.size++;
    return inserted;
  }

  has(id: string): boolean {
    this.hash(id);
    const table = this.table;
    const mask = (table.length >>> 1) - 1;
    for (let slot = this.h1 & mask; ; slot = (slot + 1) & mask) {
      const a = table[2 * slot] as number;
      const b = table[2 * slot + 1] as number;
      if (a === 0 && b === 0) return false;
      if (a === this.h1 && b === this.h2) return true;
    }
  }

  private hash(text: string): void {
    let h1 = 0xdeadbeef;
    let h2 = 0x41c6ce57;
    for (let i = 0; i < text.length; i++) {
      const ch = text.charCodeAt(i);
      h1 = Math.imul(h1 ^ ch, 2654435761);
      h2 = Math.imul(h2 ^ ch, 1597334677);
    }
    h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507);
    h1 ^= Math.imul(h2 ^ (h2 >>> 13), 3266489909);
    h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507);
    h2 ^= Math.imul(h1 ^ (h1 >>> 13), 3266489909);
    this.h1 = h1 >>> 0;
    // (0, 0) marks an empty slot.
    this.h2 = h1 === 0 && h2 === 0 ? 1 : h2 >>> 0;
  }

  private grow(): void {
    const old = this.table;
    this.table = new Uint32Array(old.length * 2);
    for (let i = 0; i < old.length; i += 2) {
      const a = old[i] as number;
      const b = old[i + 1] as number;
      if (a !== 0 || b !== 0) SeenIds.insert(this.table, a, b);
    }
  }

  private static insert(table: Uint32Array, h1: number, h2: number): boolean {
    const mask = (table.length >>> 1) - 1;
    for (let slot = h1 & mask; ; slot = (slot + 1) & mask) {
      const a = table[2 * slot] as number;
      const b = table[2 * slot + 1] as number;
      if (a === h1 && b === h2) return false;
      if (a === 0 && b === 0) {
        table[2 * slot] = h1;
        table[2 * slot + 1] = h2;
        return true;
      }
    }
  }
}

/** Counts per key with at most `maxKeys` distinct keys (later new keys are counted as `overflow`). */
export class BoundedCounter {
  private readonly counts = new Map<string, number>();
  private overflow = 0;

  constructor(private readonly maxKeys = 10_000) {}

  add(key: string): void {
    const count = this.counts.get(key);
    if (count !== undefined) this.counts.set(key, count + 1);
    else if (this.counts.size < this.maxKeys) this.counts.set(key, 1);
    else this.overflow++;
  }

  /** The `n` biggest groups (ties by key) and how many counted entries are not in them. */
  top(n: number): { top: Array<[key: string, count: number]>; other: number } {
    const sorted = [...this.counts].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    const top = sorted.slice(0, n);
    const other = sorted.slice(n).reduce((sum, [, count]) => sum + count, this.overflow);
    return { top, other };
  }
}

/** Collects up to `max` values, remembering whether more were offered. */
export class Sample<T> {
  readonly values: T[] = [];
  truncated = false;

  constructor(private readonly max = 1000) {}

  push(value: T): void {
    if (this.values.length < this.max) this.values.push(value);
    else this.truncated = true;
  }
}

/** Per-queue counts in first-use order, for reports. */
export class QueueCounts {
  private readonly counts = new Map<string, number>();

  add(queue: string, n = 1): void {
    this.counts.set(queue, (this.counts.get(queue) ?? 0) + n);
  }

  toJSON(): Array<{ queue: string; count: number }> {
    return [...this.counts].map(([queue, count]) => ({ queue, count }));
  }
}

// ---------------------------------------------------------------------------------------------------
// Error texts
// ---------------------------------------------------------------------------------------------------

/** `text` cut to `max` characters (with an ellipsis when cut). */
export function shorten(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, Math.max(0, max - 1))}…`;
}

/**
 * The group an error belongs to in totals: its first line, whitespace collapsed, with UUIDs, long hex
 * strings and numbers replaced by placeholders (so "order 123 declined" and "order 456 declined" count
 * together), cut to 120 characters.
 */
export function errorPattern(error: string): string {
  const firstLine = (error.split('\n', 1)[0] ?? '').replace(/\s+/g, ' ').trim();
  const pattern = firstLine
    .replace(/\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b/gi, '<uuid>')
    .replace(/\b(?=[0-9a-f]*[0-9])(?=[0-9a-f]*[a-f])[0-9a-f]{12,}\b/gi, '<hex>')
    .replace(/\d+(?:\.\d+)?/g, '<n>');
  return shorten(pattern === '' ? '(no error)' : pattern, 120);
}
