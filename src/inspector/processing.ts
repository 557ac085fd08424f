/**
 * The processing list: what is being worked on (owner, lease, age, whether the owner is alive), and
 * returning stuck jobs to their queue. Plain data in, plain data out.
 *
 * The list is read in pages from its right end (the oldest entries first); nothing ever loads it whole.
 * Every move is one Lua script that re-checks the entry at move time (processing-recover-3.lua).
 */
import type { RedisClient } from '../core/connection.js';
import { decodeJob, parseTimestamp, routeOfDocument, type DecodeFailureKind } from '../core/codec.js';
import { UsageError } from '../core/errors.js';
import { sha1Hex } from '../core/hash.js';
import { lrangeFromRight } from '../core/iterate.js';
import { Keys } from '../core/keys.js';
import { runScript } from '../core/scripts.js';

/** The document hash the move script checks (processing-recover-3.lua), for callers of returnToQueue. */
export { sha1Hex } from '../core/hash.js';

const PAGE_SIZE = 500;
/** Most jobs listed one by one in a recover report; counts are always exact. */
export const RECOVER_DETAIL_LIMIT = 1000;

export type LeaseState = 'live' | 'expired' | 'none';
export type DocumentState = 'ok' | 'missing' | 'wrong_type' | 'invalid_json' | 'not_a_job' | 'stub';

export interface ProcessingEntry {
  id: string;
  /** Job name; null when the document is missing or unreadable. */
  name: string | null;
  document: DocumentState;
  /** Worker holding the lease; null for ids without a lease (original workers, crashes). */
  owner: string | null;
  /** Whether the owner's registration (`worker:<id>`, kept alive by its heartbeat) exists; null without owner. */
  owner_alive: boolean | null;
  lease: LeaseState;
  lease_deadline: string | null;
  /** Milliseconds until the lease expires; negative once expired; null without lease. */
  lease_remaining_ms: number | null;
  /** The document's updated_at (enqueue or last retry: bananas does not rewrite it when a job starts). */
  updated_at: string | null;
  /** Milliseconds since updated_at; null when it is missing or unreadable. */
  age_ms: number | null;
}

export interface ProcessingListing {
  key: string;
  /** Entries in the processing list. */
  total: number;
  counts: { lease_live: number; lease_expired: number; no_lease: number; owner_dead: number };
  /** The oldest entries first (the right end of the list), at most `limit`. */
  entries: ProcessingEntry[];
  truncated: boolean;
}

/** One entry of the processing list, as read in a page. */
interface Observed {
  id: string;
  /** Lease deadline exactly as ZSCORE returned it (the move script compares it), or ''. */
  deadline: string;
  owner: string;
  document: Buffer | null | 'wrong_type';
}

/** A page of processing entries from the right end, with lease, owner and (optionally) document. */
async function readPage(
  redis: RedisClient,
  keys: Keys,
  offset: number,
  withDocuments: boolean,
): Promise<Observed[]> {
  const ids = await lrangeFromRight(redis, keys.processing, offset, PAGE_SIZE);
  if (ids.length === 0) return [];
  ids.reverse(); // rightmost (oldest) first
  const pipeline = redis.pipeline();
  for (const id of ids) {
    pipeline.zscore(keys.leases, id);
    pipeline.hget(keys.leaseOwners, id);
    if (withDocuments) pipeline.getBuffer(keys.job(id));
  }
  const replies = (await pipeline.exec()) ?? [];
  const step = withDocuments ? 3 : 2;
  return ids.map((id, i) => {
    const [, deadline] = replies[i * step] ?? [];
    const [, owner] = replies[i * step + 1] ?? [];
    let document: Observed['document'] = null;
    if (withDocuments) {
      const [err, value] = replies[i * step + 2] ?? [];
      document = err ? 'wrong_type' : ((value as Buffer | null) ?? null);
    }
    return {
      id,
      deadline: (deadline as string | null) ?? '',
      owner: (owner as string | null) ?? '',
      document,
    };
  });
}

/** Caches whether a worker's registration exists (one EXISTS per distinct owner per run). */
class WorkerLiveness {
  private readonly known = new Map<string, boolean>();

  constructor(
    private readonly redis: RedisClient,
    private readonly keys: Keys,
  ) {}

  async load(owners: string[]): Promise<void> {
    const unknown = [...new Set(owners)].filter((o) => o !== '' && !this.known.has(o));
    if (unknown.length === 0) return;
    if (this.known.size > 10_000) this.known.clear();
    const pipeline = this.redis.pipeline();
    for (const owner of unknown) pipeline.exists(this.keys.worker(owner));
    const replies = (await pipeline.exec()) ?? [];
    unknown.forEach((owner, i) => this.known.set(owner, replies[i]?.[1] === 1));
  }

  alive(owner: string): boolean | null {
    return owner === '' ? null : (this.known.get(owner) ?? false);
  }
}

interface DocumentFacts {
  state: DocumentState;
  name: string | null;
  updatedAt: string | null;
  /** Unix ms of updated_at, when readable. */
  updatedMs: number | undefined;
}

function documentFacts(document: Observed['document']): DocumentFacts {
  if (document === null) return { state: 'missing', name: null, updatedAt: null, updatedMs: undefined };
  if (document === 'wrong_type')
    return { state: 'wrong_type', name: null, updatedAt: null, updatedMs: undefined };
  const decoded = decodeJob(document);
  if (!decoded.ok) {
    const states: Record<DecodeFailureKind, DocumentState> = {
      'invalid-json': 'invalid_json',
      'not-a-job': 'not_a_job',
      stub: 'stub',
    };
    return { state: states[decoded.kind], name: null, updatedAt: null, updatedMs: undefined };
  }
  const { job } = decoded;
  return {
    state: 'ok',
    name: job.name,
    updatedAt: job.updatedAt === '' ? null : job.updatedAt,
    updatedMs: parseTimestamp(job.updatedAt)?.getTime(),
  };
}

function leaseState(deadline: string, now: number): LeaseState {
  if (deadline === '') return 'none';
  return Number(deadline) <= now ? 'expired' : 'live';
}

function isoOrNull(ms: string): string | null {
  if (ms === '') return null;
  const date = new Date(Number(ms));
  return Number.isNaN(date.getTime()) ? null : date.toISOString();
}

/** Lists the jobs in processing: lease, owner and whether it is alive, name and age. */
export async function listProcessing(
  redis: RedisClient,
  prefix: string,
  options: { limit: number; now?: number; onProgress?: (done: number, total: number) => void },
): Promise<ProcessingListing> {
  const keys = new Keys(prefix);
  const now = options.now ?? Date.now();
  const liveness = new WorkerLiveness(redis, keys);
  const counts = { lease_live: 0, lease_expired: 0, no_lease: 0, owner_dead: 0 };
  const entries: ProcessingEntry[] = [];
  const total = await redis.llen(keys.processing);
  let offset = 0;
  // Bounded by the length seen at the start: entries pushed meanwhile are on the left and not needed.
  while (offset < total) {
    const page = await readPage(redis, keys, offset, entries.length < options.limit);
    if (page.length === 0) break;
    offset += page.length;
    await liveness.load(page.map((e) => e.owner));
    for (const observed of page) {
      const lease = leaseState(observed.deadline, now);
      const alive = liveness.alive(observed.owner);
      if (lease === 'live') counts.lease_live++;
      else if (lease === 'expired') counts.lease_expired++;
      else counts.no_lease++;
      if (alive === false) counts.owner_dead++;
      if (entries.length >= options.limit) continue;
      const facts = documentFacts(observed.document);
      entries.push({
        id: observed.id,
        name: facts.name,
        document: facts.state,
        owner: observed.owner === '' ? null : observed.owner,
        owner_alive: alive,
        lease,
        lease_deadline: isoOrNull(observed.deadline),
        lease_remaining_ms: observed.deadline === '' ? null : Number(observed.deadline) - now,
        updated_at: facts.updatedAt,
        age_ms: facts.updatedMs === undefined ? null : now - facts.updatedMs,
      });
    }
    options.onProgress?.(offset, total);
    if (page.length < PAGE_SIZE) break;
  }
  return {
    key: keys.processing,
    total,
    counts,
    entries,
    truncated: total > entries.length,
  };
}

export type RecoverReason = 'lease_expired' | 'owner_dead' | 'unleased';

export interface RecoverOptions {
  /** With it: also leased jobs whose owner is dead, and (with includeUnleased) unleased ones, this old. */
  olderThanMs?: number;
  includeUnleased: boolean;
  dryRun: boolean;
  /** Move at most this many jobs. */
  limit?: number;
  /** Called with the number of jobs that qualify before anything moves (interactive confirmation). */
  confirm?: (count: number) => Promise<void>;
  onProgress?: (done: number, total: number) => void;
  now?: number;
}

export interface RecoveredJob {
  id: string;
  name: string | null;
  reason: RecoverReason;
  owner: string | null;
  lease_deadline: string | null;
  age_ms: number | null;
  /** The ready list it went back to (dry run: would go back to). */
  queue: string;
}

export interface RecoverReport {
  dry_run: boolean;
  older_than_ms: number | null;
  include_unleased: boolean;
  /** Entries examined in processing. */
  examined: number;
  /** Jobs returned to their queue (dry run: that would be). */
  moved: number;
  by_reason: Record<RecoverReason, number>;
  /** Qualified when listed, but the entry or its lease changed before the move: left alone. */
  changed: number;
  /** Entries left in processing, by why. */
  left: {
    lease_live: number;
    /** No lease, and --include-unleased was not given or the job is younger than --older-than. */
    unleased: number;
    /** No lease and no readable updated_at: their age is unknown, so they are never moved. */
    unleased_unknown_age: number;
    /** Not moved because --limit was reached. */
    over_limit: number;
  };
  /** The jobs moved (at most RECOVER_DETAIL_LIMIT; counts above are exact). */
  jobs: RecoveredJob[];
  jobs_truncated: boolean;
}

interface Candidate {
  observed: Observed;
  reason: RecoverReason;
  /** Expected document SHA-1 for the move script ('' = not checked, '-' = no document). */
  sha: string;
  facts: DocumentFacts;
}

/**
 * The ready list a document routes to, as the Lua fragment bananasRouteOf does (missing or unreadable
 * documents go to the default normal list, where the next dequeue dead-letters them).
 */
export function readyListOf(keys: Keys, document: Buffer | null | 'wrong_type'): string {
  const { priority, route } = routeOfDocument(document === 'wrong_type' ? null : document);
  return keys.queue(priority, route);
}

/** Moves processing entries back to their ready list; per item, the list it went to or null (changed). */
export async function returnToQueue(
  redis: RedisClient,
  keys: Keys,
  items: Array<{ id: string; deadline: string; owner: string; sha: string }>,
): Promise<Array<string | null>> {
  if (items.length === 0) return [];
  const args: string[] = [keys.prefix, String(items.length)];
  for (const item of items) args.push(item.id, item.deadline, item.owner, item.sha);
  const replies = await runScript<Array<string | number>>(
    redis,
    'processing-recover',
    [keys.processing, keys.leases, keys.leaseOwners],
    args,
  );
  return replies.map((r) => (typeof r === 'string' ? r : null));
}

/**
 * Returns stuck jobs to the head of their ready queue: those whose lease expired; with olderThanMs also
 * leased ones whose owner is dead and whose document is that old; with includeUnleased also ids without
 * a lease whose document's updated_at is that old. Each move is re-checked atomically.
 */
export async function recoverProcessing(
  redis: RedisClient,
  prefix: string,
  options: RecoverOptions,
): Promise<RecoverReport> {
  if (options.includeUnleased && options.olderThanMs === undefined) {
    throw new UsageError('--include-unleased needs --older-than (how old an unleased job must be)');
  }
  const keys = new Keys(prefix);
  // One clock for the whole run: what qualifies is judged as of the start (and of the confirmation).
  const now = options.now ?? Date.now();
  const limit = options.limit ?? Infinity;
  // Re-created for every pass: a worker may come back between the confirmation and the move.
  let liveness = new WorkerLiveness(redis, keys);

  const judge = (observed: Observed): Candidate | 'lease_live' | 'unleased' | 'unleased_unknown_age' => {
    const facts = documentFacts(observed.document);
    const lease = leaseState(observed.deadline, now);
    const age = facts.updatedMs === undefined ? undefined : now - facts.updatedMs;
    const oldEnough = options.olderThanMs !== undefined && age !== undefined && age >= options.olderThanMs;
    if (lease === 'expired') return { observed, reason: 'lease_expired', sha: '', facts };
    if (lease === 'live') {
      if (oldEnough && liveness.alive(observed.owner) === false)
        return { observed, reason: 'owner_dead', sha: '', facts };
      return 'lease_live';
    }
    if (!options.includeUnleased) return 'unleased';
    if (age === undefined) return 'unleased_unknown_age';
    if (!oldEnough) return 'unleased';
    const document = observed.document as Buffer;
    return { observed, reason: 'unleased', sha: sha1Hex(document), facts };
  };

  const report: RecoverReport = {
    dry_run: options.dryRun,
    older_than_ms: options.olderThanMs ?? null,
    include_unleased: options.includeUnleased,
    examined: 0,
    moved: 0,
    by_reason: { lease_expired: 0, owner_dead: 0, unleased: 0 },
    changed: 0,
    left: { lease_live: 0, unleased: 0, unleased_unknown_age: 0, over_limit: 0 },
    jobs: [],
    jobs_truncated: false,
  };

  const detail = (candidate: Candidate, queue: string): RecoveredJob => ({
    id: candidate.observed.id,
    name: candidate.facts.name,
    reason: candidate.reason,
    owner: candidate.observed.owner === '' ? null : candidate.observed.owner,
    lease_deadline: isoOrNull(candidate.observed.deadline),
    age_ms: candidate.facts.updatedMs === undefined ? null : now - candidate.facts.updatedMs,
    queue,
  });

  const record = (candidate: Candidate, queue: string): void => {
    report.moved++;
    report.by_reason[candidate.reason]++;
    if (report.jobs.length < RECOVER_DETAIL_LIMIT) report.jobs.push(detail(candidate, queue));
    else report.jobs_truncated = true;
  };

  /**
   * One pass over the list from its right end: 'count' only counts what qualifies, 'list' records it
   * (dry run), 'move' moves each page's qualifying entries before reading the next page (the offset then
   * skips only the entries that stayed: moved ones no longer count from the right). Entries that other
   * clients move meanwhile may be missed: run it again.
   */
  const pass = async (mode: 'count' | 'list' | 'move'): Promise<number> => {
    const total = await redis.llen(keys.processing);
    liveness = new WorkerLiveness(redis, keys);
    const left = { lease_live: 0, unleased: 0, unleased_unknown_age: 0, over_limit: 0 };
    let offset = 0;
    let examined = 0;
    let qualified = 0;
    while (examined < total) {
      const page = await readPage(redis, keys, offset, true);
      if (page.length === 0) break;
      examined += page.length;
      await liveness.load(page.map((e) => e.owner));
      const candidates: Candidate[] = [];
      for (const observed of page) {
        const verdict = judge(observed);
        if (typeof verdict === 'string') left[verdict]++;
        else if (qualified >= limit) left.over_limit++;
        else {
          qualified++;
          candidates.push(verdict);
        }
      }
      let removed = 0;
      if (mode === 'move') {
        const lists = await returnToQueue(
          redis,
          keys,
          candidates.map((c) => ({ ...c.observed, sha: c.sha })),
        );
        candidates.forEach((candidate, i) => {
          const list = lists[i];
          if (list === null || list === undefined) {
            report.changed++;
            return;
          }
          removed++;
          record(candidate, list);
        });
      } else if (mode === 'list') {
        for (const candidate of candidates) record(candidate, readyListOf(keys, candidate.observed.document));
      }
      offset += page.length - removed;
      options.onProgress?.(examined, total);
      if (page.length < PAGE_SIZE) break;
    }
    report.examined = examined;
    report.left = left;
    return qualified;
  };

  if (options.dryRun) {
    await pass('list');
    return report;
  }
  if (options.confirm) {
    const count = await pass('count');
    if (count === 0) return report;
    await options.confirm(count);
  }
  await pass('move');
  return report;
}
