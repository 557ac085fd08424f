/**
 * The dead-letter queue: `inspectDeadLetters` here; requeue, backup/restore and clear in dlq-*.ts
 * (re-exported below). Read-only: the list is read in pages (LRANGE + MGET), never loaded whole, and
 * every document the producers or the original's error paths leave (jobs, stubs, corrupt bytes, no
 * document at all) is reported as what it is.
 */
import type { RedisClient } from '../core/connection.js';
import { UsageError } from '../core/errors.js';
import { Keys } from '../core/keys.js';
import {
  assertFilter,
  BoundedCounter,
  classifyEntry,
  compileFilter,
  errorPattern,
  shorten,
  type ClassifiedEntry,
  type DeadLetterFilter,
  type EntryState,
} from './dlq-common.js';

export * from './dlq-backup.js';
export * from './dlq-clear.js';
export * from './dlq-requeue.js';
export type { DeadLetterFilter, EntryState } from './dlq-common.js';

export const INSPECT_DEFAULT_LIMIT = 50;
export const INSPECT_MAX_LIMIT = 10_000;
/** How many groups `by_name` and `by_error` list (the rest are summed in `other_*`). */
export const TOTALS_TOP = 50;
const ERROR_LISTING_CHARS = 300;

export interface InspectOptions extends DeadLetterFilter {
  /** Entries to list (after filters and offset). */
  limit?: number;
  /** Matching entries to skip, newest first. */
  offset?: number;
  now?: Date;
  pageSize?: number;
  onProgress?: (examined: number, total: number) => void;
}

export interface DeadLetterListing {
  id: string;
  /** `job`; `stub` (the original worker replaced the job by an error stub); `corrupt`; `missing` (no document). */
  state: EntryState;
  name: string | null;
  priority: string | null;
  routing_key: string | null;
  attempts: number | null;
  max_retries: number | null;
  /** The document's updated_at (when it was dead-lettered), as stored. */
  failed_at: string | null;
  /** The last error (a stub's error, or why the document is unreadable), shortened to 300 characters. */
  error: string;
  /** Why the entry is not a job (stub, corrupt, missing). */
  reason?: string;
  /** Time left before the document expires, in ms; null when it never expires or does not exist. */
  ttl_ms: number | null;
}

export interface DeadLetterReport {
  dead_key: string;
  /** Entries in the dead-letter list when the inspection started. */
  length: number;
  /** Entries read (entries dead-lettered during the inspection are not included). */
  examined: number;
  /** Entries that pass the filters (all of them without filters). */
  matched: number;
  offset: number;
  limit: number;
  filters: { names: string[]; grep: string | null; since_ms: number | null };
  /** Matching entries, newest first, after `offset`, at most `limit`. */
  entries: DeadLetterListing[];
  /** Over every matching entry of the whole list, not just the page. */
  totals: {
    by_state: Record<EntryState, number>;
    /** Jobs (state `job`) per name, biggest first, at most 50 names. */
    by_name: Array<{ name: string; count: number }>;
    /** Jobs in names not listed in `by_name`. */
    other_names: number;
    /** Entries per error pattern (numbers and ids replaced by placeholders), biggest first, at most 50. */
    by_error: Array<{ error: string; count: number }>;
    other_errors: number;
  };
}

/** Refuses options that cannot mean anything (checked before connecting). */
export function assertInspectOptions(options: InspectOptions): void {
  const limit = options.limit ?? INSPECT_DEFAULT_LIMIT;
  if (!Number.isSafeInteger(limit) || limit < 1 || limit > INSPECT_MAX_LIMIT) {
    throw new UsageError(`--limit must be between 1 and ${INSPECT_MAX_LIMIT} (got ${limit})`);
  }
  const offset = options.offset ?? 0;
  if (!Number.isSafeInteger(offset) || offset < 0)
    throw new UsageError('--offset must be a whole number ≥ 0');
  assertFilter(options);
}

/** Lists and totals the dead-letter queue, newest first, reading it in pages with bounded memory. */
export async function inspectDeadLetters(
  redis: RedisClient,
  prefix: string,
  options: InspectOptions = {},
): Promise<DeadLetterReport> {
  assertInspectOptions(options);
  const keys = new Keys(prefix);
  const limit = options.limit ?? INSPECT_DEFAULT_LIMIT;
  const offset = options.offset ?? 0;
  const matches = compileFilter(options, options.now ?? new Date());
  const pageSize = options.pageSize ?? 1000;

  const length = await redis.llen(keys.dead);
  const byState: Record<EntryState, number> = { job: 0, stub: 0, corrupt: 0, missing: 0 };
  const byName = new BoundedCounter();
  const byError = new BoundedCounter();
  const listed: Array<{ entry: ClassifiedEntry; ttl: number | null }> = [];
  let examined = 0;
  let matched = 0;

  // Newest first, addressed from the tail (index i of the list as it was at the start is i - length), so
  // jobs dead-lettered meanwhile (pushed at the head) neither shift the pages nor appear twice.
  for (let start = 0; start < length; start += pageSize) {
    const stop = Math.min(start + pageSize, length) - 1;
    const ids = await redis.lrange(keys.dead, start - length, stop - length);
    if (ids.length === 0) break;
    const documents = await redis.mgetBuffer(ids.map((id) => keys.job(id)));
    const pageListed: ClassifiedEntry[] = [];
    ids.forEach((id, j) => {
      examined++;
      const entry = classifyEntry({ id, document: documents[j] ?? null, index: start + j - length });
      if (!matches(entry)) return;
      matched++;
      byState[entry.state]++;
      if (entry.job) byName.add(entry.job.name);
      byError.add(errorPattern(entry.error));
      if (matched > offset && listed.length + pageListed.length < limit) pageListed.push(entry);
    });
    if (pageListed.length > 0) {
      const pipeline = redis.pipeline();
      for (const entry of pageListed) pipeline.pttl(keys.job(entry.id));
      const ttls = (await pipeline.exec()) ?? [];
      pageListed.forEach((entry, i) => {
        const ttl = ttls[i]?.[1];
        listed.push({ entry, ttl: typeof ttl === 'number' && ttl >= 0 ? ttl : null });
      });
    }
    options.onProgress?.(examined, length);
  }

  const names = byName.top(TOTALS_TOP);
  const errors = byError.top(TOTALS_TOP);
  return {
    dead_key: keys.dead,
    length,
    examined,
    matched,
    offset,
    limit,
    filters: { names: options.names ?? [], grep: options.grep ?? null, since_ms: options.sinceMs ?? null },
    entries: listed.map(({ entry, ttl }) => listing(entry, ttl)),
    totals: {
      by_state: byState,
      by_name: names.top.map(([name, count]) => ({ name, count })),
      other_names: names.other,
      by_error: errors.top.map(([error, count]) => ({ error, count })),
      other_errors: errors.other,
    },
  };
}

function listing(entry: ClassifiedEntry, ttl: number | null): DeadLetterListing {
  const job = entry.job;
  return {
    id: entry.id,
    state: entry.state,
    name: job?.name ?? null,
    priority: job?.priority ?? null,
    routing_key: job ? job.routingKey || 'default' : null,
    attempts: job?.attempts ?? null,
    max_retries: job?.maxRetries ?? null,
    failed_at: job?.updatedAt || null,
    error: shorten(entry.error, ERROR_LISTING_CHARS),
    ...(entry.reason !== undefined ? { reason: entry.reason } : {}),
    ttl_ms: ttl,
  };
}
