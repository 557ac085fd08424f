/**
 * The queue core: enqueue, dequeue with leases, settle (complete / retry / dead-letter / release),
 * promote scheduled jobs, recover expired leases. Every multi-step change runs in one Lua script.
 */
import { assertNoKeyPrefix, isCluster, type RedisClient } from './connection.js';
import { assertJsonText, encodeJob, newJob, type Job } from './codec.js';
import { DuplicateJobError, UsageError } from './errors.js';
import {
  assertClusterPrefix,
  assertRoutingKey,
  isPriority,
  Keys,
  normalizeRoutingKey,
  type Priority,
} from './keys.js';
import { prepareScript, runPrepared, runScript, runScriptBuffer } from './scripts.js';

export interface TtlOptions {
  /** TTL of a completed job's document (default 24 h). */
  completedSeconds: number;
  /** TTL of a dead-lettered job's document (default 7 days). */
  failedSeconds: number;
  /** TTL of a success result hash (default 1 h, as the original). */
  resultCompletedSeconds: number;
  /** TTL of a failure result hash (default 24 h, as the original). */
  resultFailedSeconds: number;
}

export const DEFAULT_TTLS: TtlOptions = {
  completedSeconds: 24 * 3600,
  failedSeconds: 7 * 24 * 3600,
  resultCompletedSeconds: 3600,
  resultFailedSeconds: 24 * 3600,
};

export interface QueueOptions {
  /** Key prefix (default `bananas:`). */
  prefix?: string;
  ttl?: Partial<TtlOptions>;
}

export interface EnqueueOptions {
  /** Custom id (default: a UUID v4). Refused if a job with this id exists. */
  id?: string;
  description?: string;
  priority?: Priority;
  /** Routing key: 1-64 of `[A-Za-z0-9_-]`; `default` (or absent) is the default route. */
  routingKey?: string;
  /** Failed attempts before the job is dead-lettered (default 3; 0 is a real value). */
  maxRetries?: number;
  /** Run after this many milliseconds (goes to the scheduled set). */
  delayMs?: number;
  /** Run at this time (goes to the scheduled set if in the future). */
  runAt?: Date;
  /** The payload as raw JSON text (kept byte for byte) instead of a value to serialize. */
  payloadJson?: string;
}

export interface EnqueueRequest extends EnqueueOptions {
  name: string;
  payload?: unknown;
}

export interface EnqueueBatchResult {
  /** The jobs written, in request order. */
  enqueued: Job[];
  /** Ids refused because a job with that id already exists. */
  duplicates: string[];
}

/** A job taken by {@link Queue.dequeue}: its raw document, or undefined when the document was missing. */
export interface DequeuedEntry {
  id: string;
  /** Exact stored bytes; undefined when the id had no document (it was dead-lettered already). */
  document?: Buffer;
  /** The ready list the id came from. */
  sourceList: string;
}

/** A key that holds another kind of value than bananas writes there (e.g. a string where a list belongs). */
export interface WrongKindKey {
  key: string;
  /** What the key holds, as TYPE names it (`string`, `hash`, `set`, `zset`, `list`, `stream`). */
  type: string;
}

export interface DequeueRequest {
  workerId: string;
  leaseMs: number;
  max: number;
  /** Ready lists in the order they are served (priority-major). */
  lists: string[];
  /** Only take jobs with these names (undefined: any job). */
  jobNames?: string[];
  /** With `jobNames`: how many of the oldest entries of each list are examined (default 100). */
  lookahead?: number;
  /** Signal list to re-arm when a full batch leaves jobs behind (wakes another idle worker). */
  rearmSignal?: string;
  /**
   * Called for each ready list skipped because it holds another kind of value: nothing is written to it
   * and the other lists are served as usual.
   */
  onWrongKind?: (wrong: WrongKindKey) => void;
  /**
   * Called for each second entry of an id the same dequeue took (a duplicate in a ready list): it is
   * removed from its list, and the job is taken once (run, or dead-lettered when it has no document).
   */
  onDuplicate?: (id: string) => void;
}

/** How {@link Queue.waitThenDequeue} waits. */
export interface DequeueWait {
  /** A connection of its own: while it waits (BLPOP) it serves nothing else. */
  connection: RedisClient;
  /** The signal lists whose wake-up tokens end the wait. */
  signals: string[];
  /** The longest wait. */
  timeoutMs: number;
}

export type FinishAction = 'complete' | 'retry' | 'dead' | 'release';

export interface FinishEntry {
  id: string;
  action: FinishAction;
  /** New document text; undefined leaves the stored document untouched. */
  document?: string;
  /** TTL of the new document in seconds; undefined: no expiry. */
  documentTtlSeconds?: number;
  /** retry: when to run again. */
  runAt?: Date;
  /** retry: signal list to wake. release: the ready list to put the id back on (at the head). */
  target?: string;
  /** Result backend entry to write (original SDKs' getResult / submitAndWait read it). */
  result?: { status: 'completed' | 'failed'; resultJson?: string; error?: string; durationMs: number };
}

export const DEFAULT_LOOKAHEAD = 100;
/** Most jobs per enqueue script call (a larger batch is sent as several calls, back to back). */
export const ENQUEUE_CHUNK = 200;
const MAX_ID_LENGTH = 256;
/**
 * Document text (in UTF-16 units: at most its bytes) from which an enqueue call is encoded into one
 * Buffer instead of an ioredis string.
 */
export const PREPARE_FROM_CHARS = 32 * 1024;

export function secondsScore(date: Date): string {
  return String(date.getTime() / 1000);
}

export class Queue {
  readonly redis: RedisClient;
  readonly keys: Keys;
  readonly ttl: TtlOptions;

  constructor(redis: RedisClient, options: QueueOptions = {}) {
    // A Cluster client copies its node options' keyPrefix into its own options: one check covers both.
    assertNoKeyPrefix(redis.options);
    this.redis = redis;
    this.keys = new Keys(options.prefix);
    if (isCluster(redis)) assertClusterPrefix(this.keys.prefix);
    this.ttl = { ...DEFAULT_TTLS, ...options.ttl };
  }

  /** Enqueues one job; throws DuplicateJobError if the id exists (nothing is written). */
  async enqueue(name: string, payload?: unknown, options: EnqueueOptions = {}): Promise<Job> {
    const { enqueued, duplicates } = await this.enqueueBatch([{ ...options, name, payload }]);
    if (duplicates.length > 0) throw new DuplicateJobError(duplicates[0] as string);
    return enqueued[0] as Job;
  }

  /**
   * Enqueues many jobs. Each job is atomic (document and queue entry together); jobs whose id already
   * exists are refused individually and reported. Every request is checked before anything is written (a
   * bad one throws and writes nothing); the jobs then go out in script calls of up to
   * {@link ENQUEUE_CHUNK}, sent back to back so Redis stores one chunk while the next is encoded.
   */
  async enqueueBatch(requests: EnqueueRequest[], now: Date = new Date()): Promise<EnqueueBatchResult> {
    const nowText = now.toISOString();
    const jobs = requests.map((request) => this.buildJob(request, now, nowText));
    if (jobs.length === 0) return { enqueued: [], duplicates: [] };
    const calls: Array<Promise<number[]>> = [];
    for (let from = 0; from < jobs.length; from += ENQUEUE_CHUNK) {
      const chunk = jobs.slice(from, from + ENQUEUE_CHUNK);
      const args: string[] = [`${this.keys.prefix}job:`, String(chunk.length)];
      let size = 0;
      for (const { job, runAt } of chunk) {
        const document = encodeJob(job);
        size += document.length;
        args.push(
          job.id,
          document,
          this.keys.queue(job.priority, job.routingKey),
          this.keys.signal(job.routingKey),
          runAt ? secondsScore(runAt) : '',
        );
      }
      // A large call is encoded into one Buffer here: ioredis would build it as one string (a chunk of
      // 1 KB documents is a quarter of a megabyte) for the socket to encode again, which took half again
      // the CPU per job of a bulk enqueue, much of it collecting those strings. A small one (a single
      // job) costs less as ioredis' string.
      calls.push(
        size >= PREPARE_FROM_CHARS
          ? runPrepared<number[]>(this.redis, prepareScript('enqueue', [this.keys.scheduled], args))
          : runScript<number[]>(this.redis, 'enqueue', [this.keys.scheduled], args),
      );
    }
    const replies = (await Promise.all(calls)).flat();
    const enqueued: Job[] = [];
    const duplicates: string[] = [];
    replies.forEach((reply, i) => {
      const { job } = jobs[i] as { job: Job };
      if (reply === 1) enqueued.push(job);
      else duplicates.push(job.id);
    });
    return { enqueued, duplicates };
  }

  private buildJob(request: EnqueueRequest, now: Date, nowText: string): { job: Job; runAt?: Date } {
    if (typeof request.name !== 'string' || request.name.trim() === '') {
      throw new UsageError('a job needs a non-empty name');
    }
    if (request.priority !== undefined && !isPriority(request.priority)) {
      throw new UsageError(`invalid priority ${JSON.stringify(request.priority)}: use high, normal or low`);
    }
    const routingKey = request.routingKey === undefined ? 'default' : assertRoutingKey(request.routingKey);
    if (
      request.maxRetries !== undefined &&
      (!Number.isSafeInteger(request.maxRetries) || request.maxRetries < 0)
    ) {
      throw new UsageError(`invalid max retries ${request.maxRetries}: use a whole number ≥ 0`);
    }
    if (request.id !== undefined) assertJobId(request.id);
    let payload: string;
    if (request.payloadJson !== undefined) {
      try {
        payload = assertJsonText(request.payloadJson);
      } catch (err) {
        throw new UsageError(`payload is not valid JSON: ${(err as Error).message}`);
      }
    } else {
      payload = JSON.stringify(request.payload ?? null) ?? 'null';
    }
    let runAt: Date | undefined;
    if (request.delayMs !== undefined) {
      if (!(request.delayMs >= 0)) throw new UsageError(`invalid delay ${request.delayMs}`);
      if (request.delayMs > 0) runAt = new Date(now.getTime() + request.delayMs);
    } else if (request.runAt !== undefined) {
      if (Number.isNaN(request.runAt.getTime())) throw new UsageError('invalid run-at time');
      if (request.runAt.getTime() > now.getTime()) runAt = request.runAt;
    }
    const job = newJob(request.name, payload, {
      id: request.id,
      description: request.description,
      priority: request.priority,
      routingKey,
      maxRetries: request.maxRetries,
      scheduledFor: runAt,
      now: nowText,
    });
    return { job, runAt };
  }

  /** Moves up to `max` ready jobs into processing under a lease held by `workerId`. */
  dequeue(request: DequeueRequest): Promise<DequeuedEntry[]> {
    return this.dequeueOn(this.redis, request, 0);
  }

  /**
   * Waits for a wake-up signal, then dequeues, in one round trip: the dequeue goes out on the waiting
   * connection right behind the BLPOP, and Redis runs it the moment the BLPOP returns (a signal arrived, or
   * the wait ended). The leases count from the end of the longest wait after the call was written (also
   * when it is written again after a reconnect), so none is shorter than `leaseMs` unless Redis stalls.
   * A failed wait does not undo the dequeue: its jobs come back with the error (`waitError`).
   */
  async waitThenDequeue(
    wait: DequeueWait,
    request: DequeueRequest,
  ): Promise<{ entries: DequeuedEntry[]; woken: boolean; waitError?: unknown }> {
    const popped = wait.connection.blpop(...wait.signals, wait.timeoutMs / 1000);
    const taken = this.dequeueOn(wait.connection, request, wait.timeoutMs);
    const [pop, take] = await Promise.allSettled([popped, taken]);
    if (take.status === 'rejected') throw take.reason;
    if (pop.status === 'rejected') return { entries: take.value, woken: false, waitError: pop.reason };
    return { entries: take.value, woken: pop.value !== null };
  }

  private async dequeueOn(
    redis: RedisClient,
    request: DequeueRequest,
    extraLeaseMs: number,
  ): Promise<DequeuedEntry[]> {
    const names = request.jobNames ?? [];
    const args: Array<string | number> = [
      `${this.keys.prefix}job:`,
      request.workerId,
      '', // the lease deadline, computed when the call is written (below)
      request.max,
      this.ttl.failedSeconds,
      request.rearmSignal ?? '',
      request.lists.length,
      ...request.lists,
      request.jobNames ? (request.lookahead ?? DEFAULT_LOOKAHEAD) : 0,
      names.length,
      ...names,
    ];
    const flat = await runScriptBuffer<Array<Buffer | null | number>>(
      redis,
      'dequeue',
      [this.keys.processing, this.keys.leases, this.keys.leaseOwners, this.keys.dead],
      args,
      // Counted from each write of the call: a dequeue ioredis sends again after a reconnect leases its
      // jobs from then, not from its first sending.
      { index: 2, value: () => String(Date.now() + extraLeaseMs + request.leaseMs) },
    );
    const out: DequeuedEntry[] = [];
    for (let i = 0; i < flat.length; i += 3) {
      const document = flat[i + 1];
      if (flat[i + 2] === 0) {
        // A second entry of an id taken in this call: removed from its list, not taken again.
        request.onDuplicate?.((flat[i] as Buffer).toString('utf8'));
        continue;
      }
      if ((flat[i + 2] as number) < 0) {
        // A skipped ready list: key, its kind, minus its index.
        request.onWrongKind?.({
          key: (flat[i] as Buffer).toString('utf8'),
          type: (document as Buffer).toString('utf8'),
        });
        continue;
      }
      out.push({
        id: (flat[i] as Buffer).toString('utf8'),
        ...(document instanceof Buffer ? { document } : {}),
        sourceList: request.lists[(flat[i + 2] as number) - 1] as string,
      });
    }
    return out;
  }

  /**
   * Settles jobs held by `workerId`; returns, per entry, whether it was applied (false: lease lost, or a
   * release whose target list holds another kind of value: `onWrongKind` is called with that list, and
   * the job stays in processing under its lease).
   */
  async finish(
    workerId: string,
    entries: FinishEntry[],
    now: Date = new Date(),
    onWrongKind?: (wrong: { id: string; key: string }) => void,
  ): Promise<boolean[]> {
    if (entries.length === 0) return [];
    const minute = Math.floor(now.getTime() / 60_000);
    const args: Array<string | number> = [
      workerId,
      `${this.keys.prefix}job:`,
      `${this.keys.prefix}result:`,
      this.ttl.resultCompletedSeconds,
      this.ttl.resultFailedSeconds,
      2 * 3600,
      this.ttl.completedSeconds,
      entries.length,
    ];
    for (const entry of entries) {
      const result = entry.result;
      if (
        entry.action === 'complete' &&
        entry.document !== undefined &&
        entry.documentTtlSeconds === this.ttl.completedSeconds &&
        result?.status === 'completed' &&
        result.error === undefined
      ) {
        // The short form: the script fills in the rest.
        args.push(entry.id, 'done', entry.document, result.resultJson ?? '', Math.round(result.durationMs));
        continue;
      }
      args.push(
        entry.id,
        entry.action,
        entry.document ?? '',
        entry.documentTtlSeconds ?? 0,
        entry.runAt ? secondsScore(entry.runAt) : '',
        entry.target ?? '',
        entry.result?.status ?? '',
        entry.result?.resultJson ?? '',
        entry.result?.error ?? '',
        Math.round(entry.result?.durationMs ?? 0),
      );
    }
    args.push(now.toISOString());
    const replies = await runScript<number[]>(
      this.redis,
      'finish',
      [
        this.keys.processing,
        this.keys.leases,
        this.keys.leaseOwners,
        this.keys.scheduled,
        this.keys.dead,
        this.keys.stats,
        this.keys.statsMinute(minute),
      ],
      args,
    );
    return replies.map((r, i) => {
      if (r === -1 && onWrongKind) {
        const entry = entries[i] as FinishEntry;
        onWrongKind({ id: entry.id, key: entry.target ?? '' });
      }
      return r === 1;
    });
  }

  /**
   * Moves due scheduled jobs to their ready lists (exactly once). A job whose ready list holds another kind
   * of value stays scheduled; those lists are reported in `wrongKind` (absent when there is none).
   */
  async promoteDue(
    limit = 1000,
    now: Date = new Date(),
  ): Promise<{ moved: number; nextDueAt?: Date; wrongKind?: WrongKindKey[] }> {
    const [moved, nextScore, ...skipped] = await runScript<[number, string | null, ...string[]]>(
      this.redis,
      'promote',
      [this.keys.scheduled],
      [this.keys.prefix, secondsScore(now), limit],
    );
    const wrongKind: WrongKindKey[] = [];
    for (let i = 0; i + 1 < skipped.length; i += 2)
      wrongKind.push({ key: skipped[i] as string, type: skipped[i + 1] as string });
    return {
      moved,
      // Round up to the millisecond at which the job is due (SDK scores carry microseconds; a truncated
      // time would not be due yet). The 0.001 absorbs float noise such as "…6229999" or x*1000 = n.0002.
      ...(nextScore === null ? {} : { nextDueAt: new Date(Math.ceil(Number(nextScore) * 1000 - 0.001)) }),
      ...(wrongKind.length > 0 ? { wrongKind } : {}),
    };
  }

  /** Returns jobs whose lease expired to the head of their ready list. */
  async recoverExpiredLeases(
    limit = 1000,
    now: Date = new Date(),
  ): Promise<Array<{ id: string; owner: string }>> {
    const flat = await runScript<string[]>(
      this.redis,
      'recover',
      [this.keys.processing, this.keys.leases, this.keys.leaseOwners],
      [this.keys.prefix, now.getTime(), limit],
    );
    const out: Array<{ id: string; owner: string }> = [];
    for (let i = 0; i < flat.length; i += 2)
      out.push({ id: flat[i] as string, owner: flat[i + 1] as string });
    return out;
  }

  /** Extends the leases `workerId` holds; returns the ids it no longer holds. */
  async extendLeases(workerId: string, ids: string[], leaseMs: number): Promise<string[]> {
    if (ids.length === 0) return [];
    return runScript<string[]>(
      this.redis,
      'extend',
      [this.keys.leases, this.keys.leaseOwners],
      [workerId, Date.now() + leaseMs, ...ids],
    );
  }

  /**
   * Expires the leases `workerId` holds on jobs it does not track (`heldIds`), e.g. after a dequeue whose
   * reply was lost in a connection drop; the next {@link recoverExpiredLeases} returns them to their queue.
   */
  async abandonUntrackedLeases(workerId: string, heldIds: ReadonlySet<string>): Promise<string[]> {
    const owners = await this.redis.hgetall(this.keys.leaseOwners);
    const untracked = Object.entries(owners)
      .filter(([id, owner]) => owner === workerId && !heldIds.has(id))
      .map(([id]) => id);
    if (untracked.length === 0) return [];
    return runScript<string[]>(
      this.redis,
      'abandon',
      [this.keys.leases, this.keys.leaseOwners],
      [workerId, ...untracked],
    );
  }

  /** The ready lists a worker serving these priorities and routes consumes, priority-major. */
  listsServed(priorities: readonly Priority[], routingKeys: readonly string[]): string[] {
    const lists: string[] = [];
    for (const priority of priorities) {
      for (const rk of routingKeys) lists.push(...this.keys.queuesServed(priority, normalizeRoutingKey(rk)));
    }
    return [...new Set(lists)];
  }
}

function hasControlCharacter(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x20 || code === 0x7f) return true;
  }
  return false;
}

/** Ids are opaque strings; bananas only refuses ones no operator could type or read back. */
export function assertJobId(id: string): string {
  if (id === '' || id.length > MAX_ID_LENGTH || /\s/.test(id) || hasControlCharacter(id)) {
    throw new UsageError(
      `invalid job id: use 1-${MAX_ID_LENGTH} characters without spaces or control characters`,
    );
  }
  return id;
}
