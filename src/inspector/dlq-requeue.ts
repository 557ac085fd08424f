/**
 * `dlq requeue`: moves dead jobs back to a ready list, made runnable again (attempts 0, status pending,
 * no TTL, no scheduled_for, updated_at now), keeping their routing key. This fixes the runbook's
 * `RPOPLPUSH` loop, which kept the 7-day TTL and the exhausted attempts (the job died again at once) and
 * took the oldest entry rather than the one asked for.
 *
 * A sweep works from the tail (the oldest entry) in batches: read ids (LRANGE, skipping the entries it
 * has decided to leave), fetch their documents as Buffers (MGET), compute the new documents with the
 * codec, then one Lua script per batch moves each entry only if it is still in the list and its document
 * is byte for byte what was read. An interruption (Ctrl-C, SIGKILL) between or during batches therefore
 * leaves every job in exactly one place. A sweep examines at most as many entries as the list held when
 * it started, and never handles an id twice: a job that fails again meanwhile is pushed at the head,
 * beyond the sweep, and is remembered anyway. Each window is read with the entry just before it, which
 * must be the last one the sweep read: when someone else (a second requeue) removed entries nearer the
 * tail meanwhile, positions have shifted, and the sweep reads again from where it settled instead of
 * passing over the shifted entries.
 */
import type { RedisClient } from '../core/connection.js';
import { encodeJob, resetForRequeue, type Job } from '../core/codec.js';
import { ConflictError, NotFoundError, UsageError } from '../core/errors.js';
import { Keys, routeOf, type Priority } from '../core/keys.js';
import { prepareScript, runPrepared, type PreparedScript } from '../core/scripts.js';
import {
  assertExactId,
  assertFilter,
  classifyEntry,
  compileFilter,
  hasFilter,
  MAX_IDS_PER_CALL,
  QueueCounts,
  readFromTail,
  readIdsFromTail,
  Sample,
  SeenIds,
  tombstone,
  type ClassifiedEntry,
  type DeadEntry,
  type DeadLetterFilter,
  withDocuments,
} from './dlq-common.js';

export type RequeueTarget = Priority | 'original';

export type RequeueSelection =
  /** Exactly these ids, wherever they are in the dead-letter list. */
  | { ids: string[] }
  /** Every entry. */
  | { all: true }
  /** Entries matching the filter. */
  | { filter: DeadLetterFilter };

export interface RequeueOptions {
  selection: RequeueSelection;
  /** Priority list to requeue to; `original` (default) keeps each job's priority. */
  to?: RequeueTarget;
  /** Requeue at most this many jobs (the oldest first). */
  limit?: number;
  dryRun?: boolean;
  /** Called once before anything changes (not on a dry run); throw to cancel. */
  confirm?: (question: string) => Promise<void>;
  /** Aborting it stops the sweep after the batch in flight. */
  signal?: AbortSignal;
  onProgress?: (progress: { examined: number; total: number; requeued: number }) => void;
  batchSize?: number;
  now?: () => Date;
}

export interface RequeueResult {
  dry_run: boolean;
  to: RequeueTarget;
  dead_key: string;
  selection: 'ids' | 'all' | 'filter';
  /** Entries in the dead-letter list when the requeue started. */
  dlq_length: number;
  /** Entries looked at. */
  examined: number;
  /** Jobs moved to a ready list (on a dry run: that would be). */
  requeued: number;
  /** Jobs requeued per ready list. */
  queues: Array<{ queue: string; count: number }>;
  /** The ids requeued, oldest first (the first 1000). */
  ids: string[];
  ids_truncated: boolean;
  /** Left in the dead-letter queue: the document is not JSON or not a job. */
  corrupt: number;
  /** Left: the original worker replaced the job by an error stub. */
  stub: number;
  /** Left: the id has no document. */
  missing_document: number;
  /** Left: does not match the filters. */
  not_matching: number;
  /** Left: the document changed between reading and moving it (a worker or an edit rewrote it). */
  changed: number;
  /** No longer in the dead-letter queue when the sweep got to it (someone else moved it). */
  gone: number;
  /** A second entry of an id this sweep had already requeued (left as it is). */
  duplicate: number;
  /** Stopped early by a signal; what is reported was done. */
  interrupted: boolean;
  duration_ms: number;
}

const DEFAULT_BATCH = 1000;

/** A job a batch moves, as its outcome is counted. */
interface Planned {
  id: string;
  queue: string;
}

/** A job to move, with what its script call carries (dropped once the call is encoded). */
interface Move extends Planned {
  /** The document exactly as read (the script checks it is still the stored one). */
  read: Buffer;
  /** Where the entry is expected when the script runs (negative index from the tail; 0 = unknown). */
  hint: number;
  document: string;
  signal: string;
}

interface Batch {
  /** List positions the batch read covers. */
  read: number;
  /** The id read farthest from the tail: the entry just before the next window (see `sweep`). */
  farthest?: string;
  /** Entries examined and left in place by this sweep's decision (not matching, not a job, duplicate). */
  left: number;
  planned: Planned[];
  /**
   * The script call moving the planned jobs, encoded when the batch is classified (for every batch but
   * the first, and one read again after positions shifted, while the script of the batch before runs);
   * undefined when there is nothing to send.
   */
  call?: PreparedScript;
}

class Requeue {
  readonly keys: Keys;
  readonly to: RequeueTarget;
  readonly batchSize: number;
  readonly limit: number;
  readonly now: () => Date;
  readonly queues = new QueueCounts();
  readonly ids = new Sample<string>();
  seen = new SeenIds();
  readonly started = Date.now();
  readonly result: RequeueResult;

  constructor(
    readonly redis: RedisClient,
    prefix: string,
    readonly options: RequeueOptions,
  ) {
    this.keys = new Keys(prefix);
    this.to = options.to ?? 'original';
    this.batchSize = options.batchSize ?? DEFAULT_BATCH;
    this.limit = options.limit ?? Infinity;
    this.now = options.now ?? (() => new Date());
    const selection = 'ids' in options.selection ? 'ids' : 'all' in options.selection ? 'all' : 'filter';
    this.result = {
      dry_run: options.dryRun === true,
      to: this.to,
      dead_key: this.keys.dead,
      selection,
      dlq_length: 0,
      examined: 0,
      requeued: 0,
      queues: [],
      ids: [],
      ids_truncated: false,
      corrupt: 0,
      stub: 0,
      missing_document: 0,
      not_matching: 0,
      changed: 0,
      gone: 0,
      duplicate: 0,
      interrupted: false,
      duration_ms: 0,
    };
  }

  /**
   * Examines entries read from the list (oldest first) and plans the jobs to move, at most `room`.
   * `shift`: how many entries nearer the tail the script in flight is expected to remove first.
   */
  classify(
    entries: DeadEntry[],
    shift: number,
    room: number,
    matches: (e: ClassifiedEntry) => boolean,
  ): Batch {
    const now = this.now().toISOString();
    const batch: Batch = { read: entries.length, farthest: entries.at(-1)?.id, left: 0, planned: [] };
    const moves: Move[] = [];
    for (const raw of entries) {
      if (moves.length >= room) break;
      this.result.examined++;
      const entry = classifyEntry(raw);
      if (!matches(entry)) {
        this.result.not_matching++;
        batch.left++;
      } else if (!isJob(entry)) {
        countUnrequeueable(this.result, entry);
        batch.left++;
      } else if (!this.seen.add(entry.id)) {
        this.result.duplicate++;
        batch.left++;
      } else {
        moves.push(this.plan(entry, raw.index < 0 ? raw.index + shift : 0, now));
      }
    }
    batch.call = this.prepare(moves);
    // The documents now live in the encoded call only.
    batch.planned = moves.map(({ id, queue }) => ({ id, queue }));
    return batch;
  }

  plan(entry: ClassifiedEntry & { job: Job }, hint: number, now: string): Move {
    const priority = this.to === 'original' ? entry.job.priority : this.to;
    const route = routeOf(entry.job.routingKey);
    return {
      id: entry.id,
      read: entry.document as Buffer,
      hint,
      document: encodeJob(resetForRequeue(entry.job, { priority, updatedAt: now })),
      queue: this.keys.queue(priority, route),
      signal: this.keys.signal(route),
    };
  }

  /** Encodes the batch script for `moves` (nothing for a dry run or an empty batch). */
  prepare(moves: Move[]): PreparedScript | undefined {
    if (moves.length === 0 || this.result.dry_run) return undefined;
    const targets = new Map<string, number>();
    const targetArgs: string[] = [];
    const positions: string[] = [];
    const entryArgs: Array<string | Buffer> = [];
    for (const p of moves) {
      let target = targets.get(p.queue);
      if (target === undefined) {
        target = targets.size + 1;
        targets.set(p.queue, target);
        targetArgs.push(p.queue, p.signal);
      }
      positions.push(`${p.hint} ${target}`);
      entryArgs.push(p.id, p.read, p.document);
    }
    const args = [
      tombstone(),
      2 * this.batchSize,
      this.keys.job(''),
      targets.size,
      ...targetArgs,
      moves.length,
      positions.join(' '),
      ...entryArgs,
    ];
    return prepareScript('dlq-requeue', [this.keys.dead], args);
  }

  /**
   * Sends the script call prepared for `planned` (a dry run sends nothing and reports every planned job
   * as movable).
   */
  send(planned: Planned[], call: PreparedScript | undefined): Promise<number[]> {
    if (!call) return Promise.resolve(planned.map(() => 1));
    return runPrepared<number[]>(this.redis, call);
  }

  /** Counts a script's outcome; returns how many planned entries it left in the dead-letter list. */
  settle(planned: Planned[], codes: number[]): number {
    let left = 0;
    codes.forEach((code, i) => {
      const p = planned[i] as Planned;
      if (code === 1) {
        this.result.requeued++;
        this.queues.add(p.queue);
        this.ids.push(p.id);
      } else if (code === 0) {
        this.result.changed++;
        left++;
      } else this.result.gone++;
    });
    return left;
  }

  finish(): RequeueResult {
    this.result.queues = this.queues.toJSON();
    this.result.ids = this.ids.values;
    this.result.ids_truncated = this.ids.truncated;
    this.result.duration_ms = Date.now() - this.started;
    return this.result;
  }

  targetText(): string {
    return this.to === 'original' ? 'their original queues' : `the ${this.to} queue of their route`;
  }
}

/**
 * Requeues dead-letter entries (see the module comment). `--id` moves exactly those ids and refuses, with
 * nothing changed, ids that are not in the dead-letter queue (NotFoundError) or whose document is not a
 * job (ConflictError).
 */
export async function requeueDeadLetters(
  redis: RedisClient,
  prefix: string,
  options: RequeueOptions,
): Promise<RequeueResult> {
  assertRequeueOptions(options);
  const run = new Requeue(redis, prefix, options);
  const selection = options.selection;
  if ('ids' in selection) return requeueIds(run, selection.ids);
  return sweep(run, 'filter' in selection ? selection.filter : {});
}

/** Refuses options that cannot mean anything (checked before connecting). */
export function assertRequeueOptions(options: RequeueOptions): void {
  if (options.limit !== undefined && (!Number.isSafeInteger(options.limit) || options.limit < 1)) {
    throw new UsageError('--limit must be a whole number ≥ 1');
  }
  if (options.batchSize !== undefined && !(options.batchSize >= 1))
    throw new UsageError('batch size must be ≥ 1');
  if (options.to !== undefined && !['original', 'high', 'normal', 'low'].includes(options.to)) {
    throw new UsageError(`--to must be original, high, normal or low (got ${JSON.stringify(options.to)})`);
  }
  const selection = options.selection;
  if ('ids' in selection) {
    selection.ids.forEach(assertExactId);
    const count = new Set(selection.ids).size;
    if (count === 0) throw new UsageError('give at least one --id');
    if (count > MAX_IDS_PER_CALL) {
      throw new UsageError(`at most ${MAX_IDS_PER_CALL} --id per call (got ${count}); use --name or --grep`);
    }
  } else if ('filter' in selection) {
    if (!hasFilter(selection.filter))
      throw new UsageError('a filtered requeue needs --name, --grep or --since');
    assertFilter(selection.filter);
  }
}

async function sweep(run: Requeue, filter: DeadLetterFilter): Promise<RequeueResult> {
  const { redis, keys, result, options } = run;
  const matches = compileFilter(filter, run.now());
  const length = await redis.llen(keys.dead);
  result.dlq_length = length;
  run.seen = new SeenIds(Math.min(length, run.limit));
  if (!result.dry_run && length > 0) {
    const what = hasFilter(filter)
      ? `the dead-letter jobs matching ${describeFilter(filter)}`
      : 'every dead-letter job';
    const cap = options.limit !== undefined ? ` (at most ${options.limit})` : '';
    await options.confirm?.(
      `Requeue ${what}${cap} of ${keys.dead} (${length} entries) to ${run.targetText()}?`,
    );
  }

  // `kept`: entries at the tail this sweep has examined and left in place (settled): unexamined entries
  // start after them. Only entries present at the start are examined (at most `length`); jobs
  // dead-lettered meanwhile are pushed at the head, beyond them.
  let kept = 0;
  const want = () => Math.min(run.batchSize, length - result.examined);
  const room = (inFlight: number) => run.limit - result.requeued - inFlight;

  let batch: Batch | undefined;
  if (length > 0) {
    const first = await readFromTail(redis, keys, 0, want());
    if (first.length > 0) batch = run.classify(first, 0, room(0), matches);
  }
  while (batch) {
    // The next window is read before this batch's script runs (one connection: commands run in order):
    // its ids first, so the offset is exact, then its documents and the script, so the documents arrive
    // and are decoded, and the next script call encoded, while it runs. Its position hints assume the
    // script moves every planned job; a wrong guess only makes the next script search for them.
    const inFlight = batch.planned.length;
    const more = !options.signal?.aborted && result.examined < length && room(inFlight) > 0;
    const offset = kept + batch.read;
    // The window comes with its anchor, the entry just before it (LRANGE order: the anchor is last).
    const window = more ? await readIdsFromTail(redis, keys, offset - 1, want() + 1) : [];
    // No anchor at all (the list got shorter than the offset) counts as shifted too.
    const shifted = more && window.at(-1) !== batch.farthest;
    const nextIds = shifted ? [] : window.slice(0, -1);
    const nextDocuments =
      nextIds.length > 0 ? redis.mgetBuffer(nextIds.map((id) => keys.job(id))) : undefined;
    const codes = run.send(batch.planned, batch.call);
    let next: Batch | undefined;
    if (nextDocuments) {
      const entries = withDocuments(nextIds, await nextDocuments, offset);
      next = run.classify(entries, result.dry_run ? 0 : inFlight, room(inFlight), matches);
    }
    const leftByScript = run.settle(batch.planned, await codes);
    // A dry run moves nothing: everything it examined stays where it is.
    kept += result.dry_run ? batch.read : batch.left + leftByScript;
    options.onProgress?.({ examined: result.examined, total: length, requeued: result.requeued });
    if (!next && (shifted || !more) && result.examined < length && room(0) > 0 && !options.signal?.aborted) {
      // Positions shifted under the sweep, or the limit looked reached but some jobs changed under us:
      // carry on from the settled position.
      const entries = await readFromTail(redis, keys, kept, want());
      if (entries.length > 0) next = run.classify(entries, 0, room(0), matches);
    }
    batch = next;
  }
  result.interrupted = options.signal?.aborted === true && result.examined < length && room(0) > 0;
  return run.finish();
}

async function requeueIds(run: Requeue, requested: string[]): Promise<RequeueResult> {
  const { redis, keys, result, options } = run;
  const ids = [...new Set(requested)];
  const pipeline = redis.pipeline();
  pipeline.llen(keys.dead);
  for (const id of ids) pipeline.lpos(keys.dead, id, 'RANK', -1);
  pipeline.mgetBuffer(ids.map((id) => keys.job(id)));
  const replies = (await pipeline.exec()) ?? [];
  for (const [err] of replies) if (err) throw err;
  result.dlq_length = replies[0]?.[1] as number;
  const absent = ids.filter((_, i) => replies[i + 1]?.[1] === null);
  if (absent.length > 0) {
    throw new NotFoundError(
      `not in the dead-letter queue ${keys.dead}: ${absent.join(', ')}; nothing was requeued`,
    );
  }
  const documents = replies[ids.length + 1]?.[1] as Array<Buffer | null>;
  const entries = ids.map((id, i) =>
    classifyEntry({ id, document: documents[i] ?? null, index: 0 } as DeadEntry),
  );
  const unusable = entries.filter((entry) => !isJob(entry));
  if (unusable.length > 0) {
    const reasons = unusable.map((e) => `${e.id} (${describeUnusable(e)})`).join('; ');
    throw new ConflictError(
      `cannot requeue ${reasons}: fix or delete the document first; nothing was requeued`,
    );
  }
  result.examined = entries.length;
  if (!result.dry_run) {
    const list =
      ids.length <= 3 ? ids.join(', ') : `${ids.slice(0, 3).join(', ')} and ${ids.length - 3} more`;
    await options.confirm?.(`Requeue ${list} from ${keys.dead} to ${run.targetText()}?`);
  }
  const now = run.now().toISOString();
  const moves = entries.map((entry) => run.plan(entry as ClassifiedEntry & { job: Job }, 0, now));
  run.settle(moves, await run.send(moves, run.prepare(moves)));
  run.finish();
  const failed = result.changed + result.gone;
  if (failed > 0) {
    throw new ConflictError(
      `requeued ${result.requeued} of ${ids.length}: ${failed} changed while requeueing ` +
        `(document rewritten or moved by someone else) and ${failed === 1 ? 'was' : 'were'} left as found`,
    );
  }
  return result;
}

function isJob(entry: ClassifiedEntry): entry is ClassifiedEntry & { job: Job } {
  return entry.state === 'job' && entry.job !== undefined;
}

function countUnrequeueable(result: RequeueResult, entry: ClassifiedEntry): void {
  if (entry.state === 'missing') result.missing_document++;
  else if (entry.state === 'stub') result.stub++;
  else result.corrupt++;
}

function describeUnusable(entry: ClassifiedEntry): string {
  if (entry.state === 'missing') return 'it has no document';
  if (entry.state === 'stub') return `its document is a stub the original worker wrote: ${entry.error}`;
  return `its document is corrupt: ${entry.reason ?? entry.error}`;
}

export function describeFilter(filter: DeadLetterFilter): string {
  const parts: string[] = [];
  if (filter.names?.length) parts.push(`name ${filter.names.join(' or ')}`);
  if (filter.grep !== undefined) parts.push(`error containing ${JSON.stringify(filter.grep)}`);
  if (filter.sinceMs !== undefined) parts.push(`failed in the last ${Math.round(filter.sinceMs / 1000)} s`);
  return parts.join(', ');
}
