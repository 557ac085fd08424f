/**
 * The worker engine: fetches jobs in strict priority order under leases, runs handlers with a timeout,
 * settles results atomically (in batches), promotes scheduled jobs, recovers expired leases, heartbeats,
 * and shuts down without losing a job.
 */
import { hostname } from 'node:os';
import { inspect } from 'node:util';
import { randomBytes } from 'node:crypto';
import type { RedisClient } from './connection.js';
import { decodeJob, encodeJob, type Job } from './codec.js';
import { connectOrThrow, createRedis, isCluster, type ConnectOptions } from './connection.js';
import { errorMessage, RedisAuthError } from './errors.js';
import type { HandlerContext, HandlerJob, HandlerMap } from './handlers.js';
import { PRIORITIES, type Priority } from './keys.js';
import { SlotList, type Slotted } from './slot-list.js';
import { createLogger, type Logger } from './logger.js';
import {
  Queue,
  type DequeueRequest,
  type DequeuedEntry,
  type FinishEntry,
  type TtlOptions,
  type WrongKindKey,
} from './queue.js';
import { redactUrl } from './redact.js';

export interface RetryPolicy {
  /** Delay before the first retry; doubles with each attempt (default 2 s, as the original). */
  baseMs: number;
  /** Upper bound of a retry delay (default 10 min). */
  maxMs: number;
  /** Random spread, as a fraction of the delay (default 0.2: ±20 %). */
  jitter: number;
}

export interface WorkerOptions {
  handlers: HandlerMap;
  redisUrl?: string;
  redisOptions?: ConnectOptions['redisOptions'];
  prefix?: string;
  concurrency?: number;
  /** Poll order of priorities (default high, normal, low). */
  priorities?: Priority[];
  /** Routing keys served (default: the default route). */
  routingKeys?: string[];
  /** Only take jobs with these names; others stay in their queue for other workers. */
  jobTypes?: string[];
  jobTimeoutMs?: number;
  leaseMs?: number;
  shutdownTimeoutMs?: number;
  /** How long an idle worker waits for a wake-up signal before looking at the queues again. */
  pollIntervalMs?: number;
  metricsIntervalMs?: number;
  heartbeatIntervalMs?: number;
  /**
   * How long a connection with calls outstanding may go without a reply before the worker drops it and
   * connects again (the calls are sent again); the waiting connection gets this long beyond the end of
   * its wait. Default: half the lease, between 5 and 10 seconds. A handler that blocks the event loop
   * for longer also looks like no reply (the replies wait unread): the connection is then made again.
   */
  replyTimeoutMs?: number;
  retry?: Partial<RetryPolicy>;
  ttl?: Partial<TtlOptions>;
  logger?: Logger;
}

export interface WorkerStats {
  processed: number;
  completed: number;
  failed: number;
  retried: number;
  deadLettered: number;
  inFlight: number;
  /** Handlers that ignored their abort signal and are still running although their job was settled. */
  abandoned: number;
}

interface Held extends Slotted {
  id: string;
  sourceList: string;
  /** Its settlement, once decided, until it is written. */
  settlement?: FinishEntry;
  /** Created when the handler first reads `ctx.signal` (most handlers that never look cost nothing). */
  controller?: AbortController;
  /** Why the job was aborted (timeout, shutdown, lease lost); undefined while it may run on. */
  abortReason?: Error;
  /** The handler's run while it goes on: an abort ends it (the outcome is the abort reason). */
  run?: Run;
  /** Set once the worker has decided the job's fate; later handler outcomes are ignored. */
  decided: boolean;
}

/** A dequeued batch waiting for its turn: each entry, and the job held for it (none without a document). */
interface DequeuedBatch {
  entries: DequeuedEntry[];
  held: Array<Held | undefined>;
}

/** One run of a handler (a record rather than closures: the worker makes one per job). */
interface Run {
  held: Held;
  job: Job;
  started: number;
  attempt: number;
  /** The job's child logger, made only when something logs with it (most jobs log nothing). */
  logger?: Logger;
  /** The timeout watching this run (while its handler goes on after the dispatch), and its slot there. */
  deadline?: BatchDeadline;
  deadlineSlot: number;
  /** The handler returned or threw (or its promise settled). */
  handlerSettled: boolean;
  /** Counted in `abandoned`: the run ended (timeout, abort) before its handler did. */
  countedAbandoned: boolean;
  /** The run's outcome is known (handler result or abort); later ones are ignored. */
  ended: boolean;
  /** Called with the outcome; the worker's own, shared by every run. */
  end: (run: Run, ok: boolean, valueOrError: unknown) => void;
}

/**
 * Aborts a held job: fires its signal (if the handler took it) and, on the next microtask, ends its run
 * with the reason, without waiting for the handler (callers settle or release the job first).
 */
function abortHeld(held: Held, reason: Error): void {
  if (held.abortReason !== undefined) return; // the first reason wins, as with AbortController
  held.abortReason = reason;
  held.controller?.abort(reason);
  const run = held.run;
  if (run) queueMicrotask(() => run.end(run, false, reason));
}

/**
 * The job timeout of the runs of one dispatched batch whose handlers went on after they were called (a
 * handler that returns or throws at once needs none). Each run times out when the timeout has passed since
 * its own start; they started one after the other in one turn of the event loop, so one timer, set for the
 * first of them, serves them all (it is set again for any whose time has not come yet).
 */
interface BatchDeadline {
  timer?: NodeJS.Timeout;
  /** The runs going on, in the order they started; an ended run's slot is cleared (it may hold a large payload). */
  runs: (Run | undefined)[];
  /** Runs before this index have ended or been aborted. */
  next: number;
  open: number;
  timeoutMs: number;
}

/** Sets the batch's timer for the earliest run still going, if any. */
function armDeadline(deadline: BatchDeadline): void {
  while (deadline.next < deadline.runs.length && !deadline.runs[deadline.next]) deadline.next++;
  const run = deadline.runs[deadline.next];
  if (!run) return;
  const delay = Math.max(0, run.started + deadline.timeoutMs - Date.now());
  deadline.timer = setTimeout(timeOutRuns, delay, deadline);
}

function timeOutRuns(deadline: BatchDeadline): void {
  const now = Date.now();
  const { runs, timeoutMs } = deadline;
  // Timers run on a monotonic clock, Date.now() on the wall clock: a millisecond of slack between them.
  for (; deadline.next < runs.length; deadline.next++) {
    const run = runs[deadline.next];
    if (!run) continue;
    if (run.started + timeoutMs > now + 1) break;
    abortHeld(run.held, new TimeoutError(timeoutMs));
  }
  armDeadline(deadline);
}

/** Where a handler's context keeps its run and the worker's logger. */
const CONTEXT_RUN = Symbol('run');
const CONTEXT_LOGGER = Symbol('parentLogger');

interface ContextState {
  [CONTEXT_RUN]: Run;
  [CONTEXT_LOGGER]: Logger;
  attempt: number;
  workerId: string;
}

/**
 * The getters of every handler context: the same two functions for all of them, reading the run from the
 * context they are called on. A getter made per context (a closure over its run) costs V8 an accessor
 * pair kept in its old generation: each job's objects then outlived their young generation and were
 * copied out of it, several times more collector work per job.
 */
const SIGNAL_GETTER: PropertyDescriptor = {
  enumerable: true,
  configurable: true,
  get(this: ContextState): AbortSignal {
    return signalOf(this[CONTEXT_RUN].held);
  },
};
const LOGGER_GETTER: PropertyDescriptor = {
  enumerable: true,
  configurable: true,
  get(this: ContextState): Logger {
    return runLogger(this[CONTEXT_RUN], this[CONTEXT_LOGGER]);
  },
};

/** What every context inherits: how it prints (its four keys, not the run it keeps under symbol keys). */
const CONTEXT_PROTOTYPE = {
  [inspect.custom](this: ContextState): string {
    return `HandlerContext { signal: [Getter], logger: [Getter], attempt: ${this.attempt}, workerId: ${JSON.stringify(this.workerId)} }`;
  },
};

/**
 * The context handed to a handler. `signal` and `logger` are made on first use; they are the object's own
 * properties (getters), so a copy (`{ ...ctx }`) gets their values too. Its run and the worker's logger
 * are kept under symbol keys: left out of Object.keys, JSON and logs.
 */
function runContext(run: Run, parentLogger: Logger, workerId: string): HandlerContext {
  const ctx = Object.create(CONTEXT_PROTOTYPE) as ContextState;
  Object.defineProperty(ctx, 'signal', SIGNAL_GETTER);
  Object.defineProperty(ctx, 'logger', LOGGER_GETTER);
  ctx.attempt = run.attempt;
  ctx.workerId = workerId;
  ctx[CONTEXT_RUN] = run;
  ctx[CONTEXT_LOGGER] = parentLogger;
  return ctx as unknown as HandlerContext;
}

function runLogger(run: Run, parent: Logger): Logger {
  return (run.logger ??= parent.child({ job_id: run.job.id, job_name: run.job.name, attempt: run.attempt }));
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    value !== null &&
    (typeof value === 'object' || typeof value === 'function') &&
    typeof (value as { then?: unknown }).then === 'function'
  );
}

/** The job's AbortSignal, created on first use; already aborted if the job was. */
function signalOf(held: Held): AbortSignal {
  if (!held.controller) {
    held.controller = new AbortController();
    if (held.abortReason !== undefined) held.controller.abort(held.abortReason);
  }
  return held.controller.signal;
}

export const DEFAULT_RETRY: RetryPolicy = { baseMs: 2000, maxMs: 10 * 60_000, jitter: 0.2 };

/** Delay before retry number `attempts` (1-based): exponential with jitter, never above `maxMs`. */
export function retryDelayMs(
  attempts: number,
  policy: RetryPolicy = DEFAULT_RETRY,
  random = Math.random,
): number {
  const exponential = Math.min(policy.maxMs, policy.baseMs * 2 ** Math.max(0, attempts - 1));
  const spread = exponential * policy.jitter * (2 * random() - 1);
  return Math.min(policy.maxMs, Math.max(0, Math.round(exponential + spread)));
}

class TimeoutError extends Error {
  constructor(ms: number) {
    super(`context deadline exceeded (job timeout ${ms} ms)`);
    this.name = 'TimeoutError';
  }
}

class ShutdownError extends Error {
  constructor() {
    super('worker shutting down');
    this.name = 'ShutdownError';
  }
}

/** A key holding the wrong kind of value is logged at most once per this interval. */
const WRONG_KIND_LOG_INTERVAL_MS = 60_000;

/** The current time as `toISOString()` writes it; the text is reused within one millisecond. */
let isoAt = 0;
let isoText = '';
function isoNow(): string {
  const now = Date.now();
  if (now !== isoAt) {
    isoAt = now;
    isoText = new Date(now).toISOString();
  }
  return isoText;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Calls `fn` after `turns` turns of the event loop (`setImmediate`, `turns` times). */
function afterTurns(turns: number, fn: () => void): void {
  if (turns <= 0) fn();
  else setImmediate(() => afterTurns(turns - 1, fn));
}

type ResolvedOptions = Required<
  Pick<
    WorkerOptions,
    | 'concurrency'
    | 'priorities'
    | 'routingKeys'
    | 'jobTimeoutMs'
    | 'leaseMs'
    | 'shutdownTimeoutMs'
    | 'pollIntervalMs'
    | 'metricsIntervalMs'
    | 'heartbeatIntervalMs'
    | 'replyTimeoutMs'
  >
> & { jobTypes?: string[]; retry: RetryPolicy; handlers: HandlerMap; redisUrl: string };

/** Bytes read so far on the socket of a single-server client; undefined for a cluster client. */
function socketBytesRead(redis: RedisClient): number | undefined {
  return isCluster(redis) ? undefined : redis.stream?.bytesRead;
}

export class Worker {
  readonly id: string;
  readonly queue: Queue;
  readonly logger: Logger;
  private readonly redis: RedisClient;
  private readonly blocking: RedisClient;
  private readonly options: ResolvedOptions;
  private readonly redisOptions: ConnectOptions['redisOptions'];
  private readonly lists: string[];
  private readonly signals: string[];
  private readonly held = new SlotList<Held>();
  private running = 0;
  private loopWaiter?: () => void;
  /** Dequeues in flight, and the slots they reserve. */
  private fetches = 0;
  private reserved = 0;
  /** A dequeue came back with fewer jobs than asked: wait for work once no dequeue is in flight. */
  private drained = false;
  /** A dequeue waits on the blocking connection behind its BLPOP ({@link waitForWork}). */
  private waiting = false;
  /** Ends {@link waitForWork}'s wait for its reply (set while it waits). */
  private stopWaiting?: () => void;
  /** When the blocking connection last connected or became ready (calls in flight are sent again then). */
  private blockingConnectedAt = 0;
  private fetchPausedUntil = 0;
  /**
   * Dequeued batches waiting for their turn (their jobs are held and keep their slots reserved): see
   * {@link deliver}.
   */
  private inbox: DequeuedBatch[] = [];
  private delivering = false;
  /** Jobs whose settlement is not written yet, and the script calls writing others. */
  private pending: Held[] = [];
  private settling = 0;
  private flushScheduled = false;
  private flushTimer?: NodeJS.Timeout;
  private settlePausedUntil = 0;
  /** Past the shutdown's wait for settlements: nothing more is sent (or retried). */
  private closed = false;
  private stopping = false;
  private stopped?: Promise<void>;
  private loop?: Promise<void>;
  private timers: NodeJS.Timeout[] = [];
  private nextPromoteAt = 0;
  private reconcileNeeded = false;
  private promoting?: Promise<void>;
  /** When each key holding the wrong kind of value was last logged. */
  private readonly wrongKindLoggedAt = new Map<string, number>();
  private readonly startedAt = new Date();
  private readonly counters: WorkerStats = {
    processed: 0,
    completed: 0,
    failed: 0,
    retried: 0,
    deadLettered: 0,
    inFlight: 0,
    abandoned: 0,
  };
  private durationTotalMs = 0;
  private busyMs = 0;
  private busyWindowStart = Date.now();

  constructor(options: WorkerOptions) {
    const leaseMs = options.leaseMs ?? 30_000;
    this.options = {
      handlers: options.handlers,
      redisUrl: options.redisUrl ?? 'redis://localhost:6379',
      concurrency: options.concurrency ?? 10,
      priorities: options.priorities ?? [...PRIORITIES],
      routingKeys: options.routingKeys ?? ['default'],
      jobTypes: options.jobTypes,
      jobTimeoutMs: options.jobTimeoutMs ?? 5 * 60_000,
      leaseMs,
      shutdownTimeoutMs: options.shutdownTimeoutMs ?? 30_000,
      pollIntervalMs: options.pollIntervalMs ?? 50,
      metricsIntervalMs: options.metricsIntervalMs ?? 30_000,
      heartbeatIntervalMs:
        options.heartbeatIntervalMs ?? Math.max(100, Math.min(5000, Math.floor(leaseMs / 3))),
      replyTimeoutMs: options.replyTimeoutMs ?? Math.max(5000, Math.min(10_000, Math.floor(leaseMs / 2))),
      retry: { ...DEFAULT_RETRY, ...options.retry },
    };
    this.redisOptions = options.redisOptions;
    this.id = `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
    this.logger = (options.logger ?? createLogger()).child({ worker_id: this.id });
    const connection = {
      url: this.options.redisUrl,
      mode: 'resilient' as const,
      redisOptions: options.redisOptions,
    };
    this.redis = createRedis({
      ...connection,
      connectionName: 'bananas-worker',
      replyTimeoutMs: this.options.replyTimeoutMs,
      onReplyTimeout: () => {
        if (this.closed) return; // a stop's own disconnect
        this.logger.warn(
          { connection: 'bananas-worker', reply_timeout_ms: this.options.replyTimeoutMs },
          'No reply from Redis - reconnecting',
        );
      },
      onRetry: ({ attempt, delayMs }) =>
        this.logger.warn({ attempt, retry_in_ms: delayMs }, 'Redis connection error - retrying with backoff'),
      onRecovered: ({ downMs }) => {
        this.logger.info({ down_ms: downMs }, 'Redis connection recovered');
        // Done by the fetch loop between two dequeues: a dequeue resent after the reconnect must have
        // delivered its jobs first, or they would look untracked.
        this.reconcileNeeded = true;
      },
    });
    this.blocking = createRedis({
      ...connection,
      connectionName: 'bananas-worker-wait',
      // The dequeue that follows each wait may have run with its reply lost in the drop.
      onRecovered: () => (this.reconcileNeeded = true),
    });
    for (const event of ['connect', 'ready'])
      this.blocking.on(event, () => (this.blockingConnectedAt = Date.now()));
    this.queue = new Queue(this.redis, { prefix: options.prefix, ttl: options.ttl });
    this.lists = this.queue.listsServed(this.options.priorities, this.options.routingKeys);
    this.signals = [...new Set(this.options.routingKeys.map((rk) => this.queue.keys.signal(rk)))];
  }

  /** Counters since start. */
  stats(): WorkerStats {
    return { ...this.counters, inFlight: this.running };
  }

  /**
   * Connects and starts processing. Refused credentials are an error at once; an unreachable Redis is
   * waited for (with backoff), never given up on.
   */
  async start(): Promise<void> {
    this.logger.info(
      {
        redis: redactUrl(this.options.redisUrl),
        prefix: this.queue.keys.prefix,
        concurrency: this.options.concurrency,
        priorities: this.options.priorities,
        routing_keys: this.options.routingKeys,
        job_types: this.options.jobTypes ?? 'all',
        handlers: Object.keys(this.options.handlers),
        lease_ms: this.options.leaseMs,
        job_timeout_ms: this.options.jobTimeoutMs,
      },
      'Worker starting',
    );
    const probe = createRedis({
      url: this.options.redisUrl,
      mode: 'fail-fast',
      redisOptions: this.redisOptions,
    });
    try {
      await connectOrThrow(probe, this.options.redisUrl);
      await probe.quit();
    } catch (err) {
      if (err instanceof RedisAuthError) {
        this.redis.disconnect();
        this.blocking.disconnect();
        throw err;
      }
      this.logger.warn({ err: errorMessage(err) }, 'Redis connection error - retrying with backoff');
    }
    await Promise.all([this.redis.connect(), this.blocking.connect()]).catch(() => {
      // Unreachable: ioredis keeps retrying with backoff and commands wait for the connection.
    });
    await this.heartbeat();
    if (this.stopping) return;
    this.every(() => this.heartbeat(), this.options.heartbeatIntervalMs);
    this.every(() => this.maintain(), 1000);
    this.every(() => this.logMetrics(), this.options.metricsIntervalMs);
    this.loop = this.fetchLoop();
  }

  private every(task: () => Promise<void> | void, everyMs: number): void {
    let busy = false;
    const timer = setInterval(() => {
      if (busy || this.stopping) return;
      busy = true;
      Promise.resolve()
        .then(task)
        .catch((err: unknown) => this.logger.error({ err: errorMessage(err) }, 'Background task failed'))
        .finally(() => {
          busy = false;
        });
    }, everyMs);
    this.timers.push(timer);
  }

  /**
   * Takes jobs while slots are free. Up to two dequeues are in flight at once, each for at most half the
   * slots, so Redis serves one batch while the worker runs the other; a slot is reserved from the moment a
   * dequeue asks for it, so the worker never holds more jobs than its concurrency.
   */
  private async fetchLoop(): Promise<void> {
    const batch = Math.max(1, Math.min(100, Math.ceil(this.options.concurrency / 2)));
    while (!this.stopping) {
      const free = this.options.concurrency - this.running - this.reserved;
      const mustWait =
        free <= 0 || (this.fetches > 0 && (this.fetches >= 2 || this.drained || this.reconcileNeeded));
      if (mustWait) {
        await new Promise<void>((resolve) => (this.loopWaiter = resolve));
        // Let the other jobs finishing in this tick free their slots too: one fetch then takes them all.
        await new Promise((resolve) => setImmediate(resolve));
        continue;
      }
      try {
        const pausedMs = this.fetchPausedUntil - Date.now();
        if (pausedMs > 0) {
          await sleep(pausedMs);
          continue;
        }
        // Between two dequeues (none is in flight here), before waiting: an idle worker may wait for long.
        if (this.reconcileNeeded) {
          this.reconcileNeeded = false;
          await this.reconcileAfterReconnect();
        }
        // Not awaited: the promotion and the dequeue go out back to back on one connection, so Redis runs
        // the promotion first and the dequeue sees what it moved, in one round trip.
        if (Date.now() >= this.nextPromoteAt && !this.promoting)
          void this.promote().catch((err: unknown) => this.promoteFailed(err));
        if (this.drained) {
          // The last dequeues came back short (no fetch is in flight here): wait for work.
          this.drained = false;
          await this.waitForWork(Math.min(free, batch));
          continue;
        }
        this.startFetch(Math.min(free, batch));
      } catch (err) {
        if (this.stopping) break;
        this.logger.error({ err: errorMessage(err) }, 'Fetching jobs failed');
        await sleep(1000);
      }
    }
    // Jobs a dequeue still in flight delivers are released by dispatch (the worker is stopping).
    while (this.fetches > 0) await new Promise<void>((resolve) => (this.loopWaiter = resolve));
  }

  /**
   * Dispatches the next dequeued batch, then waits three turns of the event loop before the one after:
   * the fetch loop sends the dequeue refilling the batch's slots on the first turn, its settlements go
   * out on the second ({@link scheduleFlush}), so Redis works on them while the worker runs the next
   * batch. Two replies arrive in one read whenever Redis was busy; run back to back, their jobs would
   * send their requests together too, and from then on Redis and the worker would take turns instead
   * of working at the same time.
   */
  private deliver(): void {
    if (this.delivering) return;
    const batch = this.inbox.shift();
    if (!batch) return;
    this.dispatchBatch(batch);
    this.delivering = true;
    afterTurns(3, () => {
      this.delivering = false;
      this.deliver();
    });
  }

  /** Dispatches a dequeued batch: its slots are no longer reserved, they run jobs or are free again. */
  private dispatchBatch({ entries, held }: DequeuedBatch): void {
    this.reserved -= entries.length;
    const deadline: BatchDeadline = { runs: [], next: 0, open: 0, timeoutMs: this.options.jobTimeoutMs };
    try {
      for (let i = 0; i < entries.length; i++) this.dispatch(entries[i]!, held[i], deadline);
    } finally {
      if (deadline.open > 0) armDeadline(deadline);
    }
    // The slots of jobs that did not start (no document, unreadable, lease lost, stopping) are free now.
    this.wakeLoop();
  }

  /** Wakes the fetch loop (a slot was freed or a dequeue returned). */
  private wakeLoop(): void {
    const waiter = this.loopWaiter;
    this.loopWaiter = undefined;
    waiter?.();
  }

  /** Starts a dequeue of up to `want` jobs; its slots stay reserved until it returns. */
  private startFetch(want: number): void {
    this.fetches++;
    this.reserved += want;
    this.queue
      .dequeue(this.dequeueRequest(want))
      .then(
        (entries) => this.fetched(want, entries),
        (err: unknown) => this.fetchFailed(want, err),
      )
      .finally(() => this.wakeLoop());
  }

  private dequeueRequest(want: number): DequeueRequest {
    return {
      workerId: this.id,
      leaseMs: this.options.leaseMs,
      max: want,
      lists: this.lists,
      jobNames: this.options.jobTypes,
      rearmSignal: this.signals[0],
      onWrongKind: this.onWrongKindList,
      onDuplicate: this.onDuplicateEntry,
    };
  }

  /** The dequeue's reports, made once (a dequeue goes out for every batch). */
  private readonly onWrongKindList = (wrong: WrongKindKey): void =>
    this.warnWrongKind(wrong, 'Ready list holds the wrong kind of value: skipped');

  private readonly onDuplicateEntry = (id: string): void =>
    this.logger.warn(
      { job_id: id },
      'Duplicate entry of a job in its ready list removed; the job is taken once',
    );

  /** A dequeue of up to `want` jobs returned: its jobs are held and wait for their turn. */
  private fetched(want: number, entries: DequeuedEntry[]): void {
    this.fetches--;
    // The slots of the jobs delivered stay reserved until they are dispatched.
    this.reserved -= want - entries.length;
    if (entries.length < want) this.drained = true;
    const held = entries.map((entry) => (entry.document ? this.hold(entry) : undefined));
    this.inbox.push({ entries, held });
    this.deliver();
  }

  private fetchFailed(want: number, err: unknown): void {
    this.fetches--;
    this.reserved -= want;
    if (!this.stopping) {
      this.logger.error({ err: errorMessage(err) }, 'Fetching jobs failed');
      this.fetchPausedUntil = Date.now() + 1000;
    }
  }

  /**
   * Logs a key that holds another kind of value than bananas writes there, at most once a minute per key
   * (a dequeue or promotion meets it many times a second).
   */
  private warnWrongKind(wrong: WrongKindKey, message: string): void {
    const now = Date.now();
    const last = this.wrongKindLoggedAt.get(wrong.key);
    if (last !== undefined && now - last < WRONG_KIND_LOG_INTERVAL_MS) return;
    this.wrongKindLoggedAt.set(wrong.key, now);
    this.logger.warn({ ...wrong }, message);
  }

  /**
   * Waits for a wake-up signal (or the poll interval, or the next promotion), then dequeues up to `want`
   * jobs in the same round trip ({@link Queue.waitThenDequeue}): a job arriving at an idle worker starts
   * after one round trip, not two.
   */
  private async waitForWork(want: number): Promise<void> {
    if (this.stopping) return; // a stop during the loop's last await: nothing would end this wait
    // While a promotion just sent is in flight, the shortest wait: its reply sets the next due time.
    const untilPromote = Math.max(1, this.nextPromoteAt - Date.now());
    const timeoutMs = Math.max(10, Math.min(this.options.pollIntervalMs, untilPromote));
    this.fetches++;
    this.reserved += want;
    this.waiting = true;
    const stopWatching = this.watchWait(timeoutMs);
    const call = this.queue.waitThenDequeue(
      { connection: this.blocking, signals: this.signals, timeoutMs },
      this.dequeueRequest(want),
    );
    // A stop does not wait for the reply: on a cluster in failover the calls may stay queued long after
    // the waiting connection was closed.
    const stopped = new Promise<undefined>((resolve) => (this.stopWaiting = () => resolve(undefined)));
    let result: Awaited<typeof call> | undefined;
    try {
      result = await Promise.race([call, stopped]);
    } catch (err) {
      this.fetches--;
      this.reserved -= want;
      if (this.stopping) return;
      throw err; // logged by the fetch loop, which pauses
    } finally {
      stopWatching();
      this.waiting = false;
      this.stopWaiting = undefined;
    }
    if (result === undefined) {
      this.fetches--;
      this.reserved -= want;
      // Jobs of a dequeue that still answers go back to their queue (while settlements are written).
      call.then(
        ({ entries }) => {
          for (const entry of entries) if (entry.document) this.release(this.hold(entry));
        },
        () => undefined,
      );
      return;
    }
    // A wake-up may come from a new scheduled job or retry: look at the scheduled set again.
    if (result.woken) this.nextPromoteAt = 0;
    this.fetched(want, result.entries);
    if (result.waitError !== undefined && !this.stopping) throw result.waitError;
  }

  /**
   * Watches the waiting connection while the reply of a wait of `timeoutMs` (and of the dequeue behind it)
   * is missing; returns the function that stops watching.
   */
  private watchWait(timeoutMs: number): () => void {
    // A connection that died without a word (a failover moving an address, a dropped NAT entry) never
    // answers: reconnect it, and the wait and the dequeue are sent again (a dequeue that ran with its
    // reply lost is handed back by the reconciliation that follows a reconnect). Checked again for as
    // long as the reply is missing. A connection that is connecting is being retried already; one that
    // connected since (its handshake unanswered, or its calls sent again) gets the full time again. A
    // handshake still getting answers (a server loading its data answers LOADING until it is done) is
    // alive; a cluster client has no one socket to tell, and is left to its own retries then.
    // The grace is replyTimeoutMs: a Redis paused for a failover (CLIENT PAUSE) or busy with a slow
    // command answers late, not never.
    const watchdogMs = timeoutMs + this.options.replyTimeoutMs;
    const sentAt = Date.now();
    let bytesRead = socketBytesRead(this.blocking);
    let watchdog: NodeJS.Timeout | undefined;
    const arm = (delayMs: number): void => {
      watchdog = setTimeout(() => {
        if (this.stopping) return;
        const status = this.blocking.status;
        const read = socketBytesRead(this.blocking);
        const answering = read === undefined || read !== bytesRead;
        bytesRead = read;
        if (status !== 'ready' && (status !== 'connect' || answering)) return arm(watchdogMs);
        const waitedMs = Date.now() - Math.max(sentAt, this.blockingConnectedAt);
        if (waitedMs < watchdogMs) return arm(watchdogMs - waitedMs);
        this.logger.warn(
          { waited_ms: waitedMs },
          'No reply while waiting for work - reconnecting the waiting connection',
        );
        this.blocking.disconnect(true);
        arm(watchdogMs);
      }, delayMs).unref();
    };
    arm(watchdogMs);
    return () => clearTimeout(watchdog);
  }

  /** Promotes due scheduled jobs; one promotion at a time (a call during one shares it). */
  private promote(): Promise<void> {
    this.promoting ??= this.promoteNow().finally(() => (this.promoting = undefined));
    return this.promoting;
  }

  private async promoteNow(): Promise<void> {
    const asked = this.nextPromoteAt;
    const { moved, nextDueAt, wrongKind } = await this.queue.promoteDue();
    if (moved > 0) this.logger.debug({ moved }, 'Scheduled jobs promoted');
    for (const wrong of wrongKind ?? [])
      this.warnWrongKind(wrong, 'Ready list holds the wrong kind of value: due jobs left scheduled');
    // Jobs left scheduled keep the earliest due time in the past: look again in a second, not at once.
    const next = wrongKind
      ? Date.now() + 1000
      : Math.min(Date.now() + 1000, nextDueAt ? nextDueAt.getTime() : Infinity);
    // A wake-up or a retry during the call may have asked for an earlier look: keep it.
    this.nextPromoteAt = this.nextPromoteAt < asked ? Math.min(this.nextPromoteAt, next) : next;
  }

  private promoteFailed(err: unknown): void {
    if (!this.stopping) this.logger.error({ err: errorMessage(err) }, 'Promoting scheduled jobs failed');
  }

  /** Every second: promote due scheduled jobs and return jobs whose lease expired (a dead worker's). */
  private async maintain(): Promise<void> {
    if (Date.now() >= this.nextPromoteAt) await this.promote();
    const recovered = await this.queue.recoverExpiredLeases();
    for (const { id, owner } of recovered) {
      this.logger.warn({ job_id: id, previous_owner: owner }, 'Lease expired; job returned to its queue');
    }
  }

  /**
   * A command whose reply was lost in the drop may have run: a dequeue then left jobs under this worker's
   * lease that it does not know about. Hand them back now instead of after the lease expires.
   */
  private async reconcileAfterReconnect(): Promise<void> {
    try {
      const abandoned = await this.queue.abandonUntrackedLeases(this.id, new Set(this.heldIds()));
      if (abandoned.length === 0) return;
      await this.queue.recoverExpiredLeases();
      this.logger.warn(
        { jobs: abandoned },
        'Jobs taken in a dequeue whose reply was lost were returned to their queue',
      );
    } catch (err) {
      this.logger.error({ err: errorMessage(err) }, 'Reconciling leases after reconnect failed');
    }
  }

  /** Tracks a job this worker holds a lease for, until its settlement is written. */
  private hold(entry: DequeuedEntry): Held {
    const held: Held = { slot: -1, id: entry.id, sourceList: entry.sourceList, decided: false };
    this.held.add(held);
    return held;
  }

  /** The ids of the jobs this worker holds (an id taken twice, from a duplicate entry, is listed twice). */
  private heldIds(): string[] {
    return this.held.values().map((held) => held.id);
  }

  private dispatch(entry: DequeuedEntry, held: Held | undefined, deadline: BatchDeadline): void {
    if (!entry.document) {
      this.counters.deadLettered++;
      this.logger.error({ job_id: entry.id, queue: entry.sourceList }, 'Job data not found for ID');
      return;
    }
    // Decided while the batch waited for its turn: lease lost (the heartbeat said so), or released at stop.
    if (!held || held.decided) return;
    if (this.stopping) {
      this.release(held);
      return;
    }
    const decoded = decodeJob(entry.document);
    if (!decoded.ok) {
      this.counters.deadLettered++;
      this.logger.error(
        {
          job_id: entry.id,
          reason: decoded.reason,
          kind: decoded.kind,
          data: entry.document.toString('utf8').slice(0, 500),
        },
        'Failed to unmarshal job; moved to the dead-letter queue (document kept as stored)',
      );
      this.settle(held, { id: entry.id, action: 'dead' });
      return;
    }
    this.running++;
    this.execute(held, decoded.job, decoded.data, deadline);
  }

  private execute(held: Held, job: Job, data: unknown, deadline: BatchDeadline): void {
    const run: Run = {
      held,
      job,
      started: Date.now(),
      attempt: job.attempts + 1,
      logger: undefined,
      deadline: undefined,
      deadlineSlot: 0,
      handlerSettled: false,
      countedAbandoned: false,
      ended: false,
      end: this.endRun,
    };
    const handler = this.options.handlers[job.name];
    if (!handler) {
      this.handlerEnded(
        run,
        false,
        new Error(`no handler registered for job name ${JSON.stringify(job.name)}`),
      );
      return;
    }
    if (held.abortReason !== undefined) {
      this.handlerEnded(run, false, held.abortReason);
      return;
    }
    held.run = run;
    let value: unknown;
    let pending: Promise<unknown> | undefined;
    try {
      // Built field by field: a spread of the job costs more than the rest of the dispatch.
      const handlerJob: HandlerJob = {
        id: job.id,
        name: job.name,
        description: job.description,
        payload: job.payload,
        status: job.status,
        priority: job.priority,
        createdAt: job.createdAt,
        updatedAt: job.updatedAt,
        scheduledFor: job.scheduledFor,
        attempts: job.attempts,
        maxRetries: job.maxRetries,
        error: job.error,
        routingKey: job.routingKey,
        extra: job.extra,
        data,
      };
      value = handler(handlerJob, runContext(run, this.logger, this.id));
      // Inside the try: reading `then` may throw too, which fails the job like a throw.
      if (isThenable(value)) pending = Promise.resolve(value);
    } catch (error) {
      this.handlerEnded(run, false, error);
      return;
    }
    if (!pending) {
      this.handlerEnded(run, true, value);
      return;
    }
    // The run goes on: the batch's timeout watches it.
    run.deadline = deadline;
    run.deadlineSlot = deadline.runs.push(run) - 1;
    deadline.open++;
    pending.then(
      (result) => this.handlerEnded(run, true, result),
      (error: unknown) => this.handlerEnded(run, false, error),
    );
  }

  /** The handler returned or threw: ends the run, unless an abort ended it first (then it was abandoned). */
  private handlerEnded(run: Run, ok: boolean, valueOrError: unknown): void {
    run.handlerSettled = true;
    if (run.countedAbandoned) this.counters.abandoned--;
    this.endRun(run, ok, valueOrError);
  }

  /** The outcome of a run: the handler's result or error, or the reason it was aborted (first one wins). */
  private readonly endRun = (run: Run, ok: boolean, valueOrError: unknown): void => {
    if (run.ended) return;
    run.ended = true;
    const { held, job, started, deadline } = run;
    if (deadline) {
      deadline.runs[run.deadlineSlot] = undefined;
      if (--deadline.open === 0) clearTimeout(deadline.timer);
    }
    held.run = undefined;
    if (!run.handlerSettled && held.abortReason !== undefined) {
      // The handler ignored its abort signal: the job is settled and the slot freed without it; the
      // stray promise is counted until it ends.
      run.countedAbandoned = true;
      this.counters.abandoned++;
    }
    const durationMs = Date.now() - started;
    this.running--;
    this.busyMs += Date.now() - Math.max(started, this.busyWindowStart);
    this.wakeLoop();
    if (held.decided) return; // released at shutdown or lease lost: the outcome no longer counts
    this.counters.processed++;
    this.durationTotalMs += durationMs;
    if (ok) {
      let resultJson: string | undefined;
      try {
        resultJson = valueOrError === undefined ? undefined : JSON.stringify(valueOrError);
      } catch (err) {
        ok = false;
        valueOrError = new Error(`handler result is not JSON-serializable: ${errorMessage(err)}`);
      }
      if (ok) {
        this.counters.completed++;
        if (this.logger.isLevelEnabled('debug'))
          runLogger(run, this.logger).debug({ duration_ms: durationMs }, 'Job completed');
        this.settle(held, {
          id: job.id,
          action: 'complete',
          document: encodeJob(job, { status: 'completed', updatedAt: isoNow(), scheduledFor: '' }),
          documentTtlSeconds: this.queue.ttl.completedSeconds,
          result: { status: 'completed', resultJson, durationMs },
        });
        return;
      }
    }
    this.fail(held, job, valueOrError, durationMs, runLogger(run, this.logger));
  };

  private fail(held: Held, job: Job, error: unknown, durationMs: number, log: Logger): void {
    const message = errorMessage(error);
    const stack = error instanceof Error ? error.stack : undefined;
    const attempts = job.attempts + 1;
    const changes = { attempts, error: message, updatedAt: new Date().toISOString() };
    if (attempts < job.maxRetries) {
      const runAt = new Date(Date.now() + retryDelayMs(attempts, this.options.retry));
      const retryAt = runAt.toISOString();
      this.counters.retried++;
      this.nextPromoteAt = Math.min(this.nextPromoteAt, runAt.getTime());
      log.warn({ err: message, stack, retry_at: retryAt }, 'Job failed; retry scheduled');
      this.settle(held, {
        id: job.id,
        action: 'retry',
        document: encodeJob(job, { ...changes, status: 'pending', scheduledFor: retryAt }),
        runAt,
        target: this.queue.keys.signal(job.routingKey),
      });
      return;
    }
    this.counters.failed++;
    log.error(
      { err: message, stack, attempts, max_retries: job.maxRetries },
      'Job failed permanently; moved to the dead-letter queue',
    );
    this.settle(held, {
      id: job.id,
      action: 'dead',
      document: encodeJob(job, { ...changes, status: 'failed', scheduledFor: '' }),
      documentTtlSeconds: this.queue.ttl.failedSeconds,
      result: { status: 'failed', error: message, durationMs },
    });
  }

  private release(held: Held): void {
    abortHeld(held, new ShutdownError());
    this.settle(held, { id: held.id, action: 'release', target: held.sourceList });
  }

  /** Queues a settlement; settlements are written in batches, one script call per batch. */
  private settle(held: Held, entry: FinishEntry): void {
    held.decided = true;
    held.settlement = entry;
    this.pending.push(held);
    this.scheduleFlush();
  }

  /**
   * Writes the queued settlements two turns of the event loop from now: the jobs ending meanwhile join
   * the batch, and the dequeue refilling their slots (sent by the fetch loop on the first turn) reaches
   * Redis first, so new jobs are handed out before these results are written.
   */
  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    afterTurns(2, () => {
      this.flushScheduled = false;
      this.flush();
    });
  }

  /** Sends the queued settlements, without waiting for the ones already sent; paused after a failure. */
  private flush(): void {
    if (this.closed) return;
    const pausedMs = this.settlePausedUntil - Date.now();
    if (pausedMs > 0) {
      this.flushTimer ??= setTimeout(() => {
        this.flushTimer = undefined;
        this.flush();
      }, pausedMs);
      return;
    }
    while (this.pending.length > 0) void this.writeSettlements(this.pending.splice(0, 200));
  }

  private async writeSettlements(batch: Held[]): Promise<void> {
    this.settling++;
    try {
      const refused = new Set<string>();
      const entries = batch.map((held) => held.settlement as FinishEntry);
      const applied = await this.queue.finish(this.id, entries, new Date(), ({ id, key }) => {
        refused.add(id);
        this.logger.warn(
          { job_id: id, key },
          'Ready list holds the wrong kind of value: job left in processing, recovered once the list is repaired',
        );
      });
      applied.forEach((ok, i) => {
        const held = batch[i] as Held;
        this.held.remove(held);
        held.settlement = undefined;
        if (!ok && !refused.has(held.id)) {
          this.logger.warn(
            { job_id: held.id },
            'Lease no longer held when settling: already settled by a resent command, or recovered by another worker (then it may run again)',
          );
        }
      });
    } catch (err) {
      if (this.closed) return; // reported by the shutdown as not settled
      this.logger.error({ err: errorMessage(err), jobs: batch.length }, 'Settling jobs failed; will retry');
      this.pending.unshift(...batch);
      this.settlePausedUntil = Date.now() + 1000;
      this.scheduleFlush();
    } finally {
      this.settling--;
    }
  }

  private async heartbeat(): Promise<void> {
    const lost = new Set(await this.queue.extendLeases(this.id, this.heldIds(), this.options.leaseMs));
    if (lost.size > 0) {
      for (const held of this.held.values()) {
        if (!lost.has(held.id) || held.decided) continue;
        held.decided = true;
        abortHeld(held, new Error('lease lost'));
        this.held.remove(held);
        this.logger.warn(
          { job_id: held.id },
          'Lease lost while the job ran; another worker may run it again',
        );
      }
    }
    const keys = this.queue.keys;
    const now = Date.now();
    await this.redis
      .multi()
      .hset(keys.worker(this.id), {
        id: this.id,
        host: hostname(),
        pid: process.pid,
        concurrency: this.options.concurrency,
        priorities: this.options.priorities.join(','),
        routing_keys: this.options.routingKeys.join(','),
        job_types: (this.options.jobTypes ?? []).join(','),
        started_at: this.startedAt.toISOString(),
        last_seen: new Date(now).toISOString(),
        in_flight: this.running,
        processed: this.counters.processed,
        completed: this.counters.completed,
        failed: this.counters.failed,
        retried: this.counters.retried,
        lease_ms: this.options.leaseMs,
      })
      .pexpire(keys.worker(this.id), Math.max(15_000, this.options.heartbeatIntervalMs * 3))
      .zadd(keys.workers, now, this.id)
      .zremrangebyscore(keys.workers, '-inf', now - 24 * 3600_000)
      .exec();
  }

  private logMetrics(): void {
    const now = Date.now();
    const windowMs = now - this.busyWindowStart;
    const utilization = windowMs > 0 ? (100 * this.busyMs) / (windowMs * this.options.concurrency) : 0;
    this.busyMs = 0;
    this.busyWindowStart = now;
    const { processed, completed, failed, retried, deadLettered } = this.counters;
    const settled = completed + failed;
    this.logger.info(
      {
        jobs_processed: processed,
        jobs_completed: completed,
        jobs_failed: failed,
        jobs_retried: retried,
        jobs_dead_lettered: deadLettered,
        avg_duration_ms: processed > 0 ? Math.round(this.durationTotalMs / processed) : 0,
        worker_utilization: Math.round(Math.min(100, utilization) * 100) / 100,
        error_rate: settled > 0 ? Math.round((10000 * failed) / settled) / 100 : 0,
        in_flight: this.running,
        uptime: `${Math.round((now - this.startedAt.getTime()) / 1000)}s`,
      },
      'System metrics',
    );
  }

  /**
   * Graceful stop: no new jobs; in-flight jobs get `shutdownTimeoutMs` to finish; the rest are aborted
   * and put back at the head of their queue (attempts unchanged); the worker deregisters.
   */
  stop(): Promise<void> {
    this.stopped ??= this.shutdown();
    return this.stopped;
  }

  private async shutdown(): Promise<void> {
    this.stopping = true;
    this.logger.info(
      { in_flight: this.running, timeout_ms: this.options.shutdownTimeoutMs },
      'Worker stopping',
    );
    const dequeueWaiting = this.waiting;
    this.blocking.disconnect();
    this.stopWaiting?.();
    this.wakeLoop();
    const deadline = Date.now() + this.options.shutdownTimeoutMs;
    while (this.running > 0 && Date.now() < deadline) await sleep(Math.min(50, deadline - Date.now()));
    // The fetch loop ends at its next step; with Redis unreachable that step may never come.
    await Promise.race([this.loop?.catch(() => undefined), sleep(Math.max(1000, deadline - Date.now()))]);
    // Batches still waiting for their turn: dispatching them now releases their jobs (stopping).
    for (const batch of this.inbox.splice(0)) this.dispatchBatch(batch);
    const unfinished = this.held.values().filter((h) => !h.decided);
    for (const held of unfinished) this.release(held);
    if (unfinished.length > 0) {
      this.logger.warn(
        { jobs: unfinished.map((h) => h.id) },
        'Shutdown timeout: unfinished jobs returned to their queue',
      );
    }
    const settleDeadline = Date.now() + 5000;
    while ((this.settling > 0 || this.pending.length > 0) && Date.now() < settleDeadline) await sleep(20);
    // The dequeue waiting behind the BLPOP may have run just as the connection closed, its reply lost:
    // jobs leased to this worker that it never received go back to their queue now, not at lease expiry.
    if (dequeueWaiting) await Promise.race([this.reconcileAfterReconnect(), sleep(2000)]);
    this.closed = true;
    if (this.settling > 0 || this.pending.length > 0) {
      this.logger.error(
        { jobs: this.pending.map((held) => held.id), lease_ms: this.options.leaseMs },
        'Could not settle jobs before exit (Redis unreachable); they run again once their lease expires',
      );
    }
    for (const timer of this.timers) clearInterval(timer);
    clearTimeout(this.flushTimer);
    const deregister = this.redis
      .multi()
      .del(this.queue.keys.worker(this.id))
      .zrem(this.queue.keys.workers, this.id)
      .exec()
      .catch(() => undefined);
    await Promise.race([deregister, sleep(2000)]);
    this.logMetrics();
    this.logger.info({ ...this.stats() }, 'Worker stopped');
    this.redis.disconnect();
  }
}
