/**
 * Redis connections. Workers reconnect forever with the runbook's backoff (2, 4, 8, 16, 30 s max);
 * operator commands fail fast with a typed error. No password ever reaches a message or a log.
 */
import { readFileSync } from 'node:fs';
import type { ConnectionOptions as TlsConnectionOptions } from 'node:tls';
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import { RedisAuthError, RedisUnavailableError, BananasError, UsageError, errorMessage } from './errors.js';
import { redactSecrets, redactUrl, secretsOf } from './redact.js';
import { parseRedisUrl, type RedisTopology } from './redis-url.js';

/**
 * A connection as bananas uses it: one server (also when found through Sentinel) or a Redis Cluster. In
 * cluster mode every key of a deployment shares one hash slot (the prefix carries a hash tag), so scripts,
 * MULTI and pipelines work unchanged; only commands that are not about keys (SCAN, INFO, CONFIG, SLOWLOG)
 * must go to each node: see {@link masterNodes}.
 */
export type RedisClient = Redis | Cluster;

/** True when `redis` is a Redis Cluster client. */
export function isCluster(redis: RedisClient): redis is Cluster {
  return redis instanceof Cluster;
}

/**
 * The servers that hold the data: every master of a cluster (as the client knows them now), or the one
 * server of any other connection.
 */
export function masterNodes(redis: RedisClient): Redis[] {
  return isCluster(redis) ? redis.nodes('master') : [redis];
}

/**
 * The server holding `key`: in a cluster the master of its hash slot (for a deployment with a tagged
 * prefix, the node holding all of its keys); otherwise the one server.
 */
export async function nodeForKey(redis: RedisClient, key: string): Promise<Redis> {
  if (!isCluster(redis)) return redis;
  const slot = Number(await redis.call('CLUSTER', 'KEYSLOT', key));
  const address = redis.slots[slot]?.[0];
  const node = redis.nodes('master').find((n) => nodeAddress(n) === address);
  if (!node) throw new RedisUnavailableError(`no reachable master holds hash slot ${slot} (key ${key})`);
  return node;
}

/** `host:port` of a server connection (for per-node reports). */
export function nodeAddress(node: Redis): string {
  const { host, port } = node.options;
  return `${host ?? '?'}:${port ?? '?'}`;
}

export const DEFAULT_REDIS_URL = 'redis://localhost:6379';

/** Backoff between reconnection attempts: 2, 4, 8, 16, then 30 s. */
export function reconnectDelayMs(attempt: number): number {
  return Math.min(2000 * 2 ** Math.max(0, attempt - 1), 30_000);
}

export interface ConnectionEvents {
  /** Called once per reconnection attempt with the delay before it. */
  onRetry?: (info: { attempt: number; delayMs: number; error?: string }) => void;
  /** Called when the connection is ready again after a failure. */
  onRecovered?: (info: { downMs: number }) => void;
}

export interface ConnectOptions extends ConnectionEvents {
  url?: string;
  /** `resilient` reconnects forever (workers); `fail-fast` gives up at once (operator commands). */
  mode: 'resilient' | 'fail-fast';
  connectionName?: string;
  /**
   * Longest time a connection with calls outstanding may go without receiving a byte before it is
   * dropped and connected again (its calls are sent again): a connection that died without a word (an
   * address moved in a failover, a NAT entry dropped) would otherwise wait for the kernel to give up on
   * it, a quarter of an hour. Default: {@link FAIL_FAST_REPLY_TIMEOUT_MS} in `fail-fast` mode (the call
   * then fails), no limit in `resilient` mode. Not for a connection that blocks (BLPOP) longer than this.
   */
  replyTimeoutMs?: number;
  /** Called when a connection is dropped because no reply came within `replyTimeoutMs`. */
  onReplyTimeout?: () => void;
  /** Extra ioredis options (tests, TLS). */
  redisOptions?: RedisOptions;
}

/**
 * How long an operator command waits for a reply before it gives up on the connection: a server that
 * answers nothing (a dead network path, a handshake never answered) is an unreachable one.
 */
export const FAIL_FAST_REPLY_TIMEOUT_MS = 10_000;

/** The error with which ioredis destroys a socket that went without a reply for `socketTimeout` ms. */
const REPLY_TIMEOUT_ERROR = /^Socket timeout\. Expecting data, but didn't receive any in (\d+)ms/;

/** TLS settings as given on the command line: PEM file paths and the no-verification switch. */
export interface TlsFiles {
  /** CA certificate(s) that sign the server's certificate (PEM). */
  ca?: string;
  /** Client certificate (PEM), for servers that require one (`tls-auth-clients yes`). */
  cert?: string;
  /** Private key of the client certificate (PEM). */
  key?: string;
  /** Skip the server certificate check (testing only). */
  insecure?: boolean;
}

function readPem(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : errorMessage(err);
    throw new UsageError(`cannot read the TLS ${what} ${JSON.stringify(path)}: ${reason}`);
  }
}

/**
 * The ioredis `tls` option for these settings (files are read now; an unreadable one is a UsageError),
 * or undefined when none is given (a `rediss://` URL then uses the system CAs). Any setting turns TLS on.
 */
export function tlsOptions(files: TlsFiles): TlsConnectionOptions | undefined {
  if (!files.ca && !files.cert && !files.key && !files.insecure) return undefined;
  if (Boolean(files.cert) !== Boolean(files.key)) {
    throw new UsageError('a TLS client certificate needs both --tls-cert and --tls-key');
  }
  const tls: TlsConnectionOptions = {};
  if (files.ca) tls.ca = readPem(files.ca, 'CA file');
  if (files.cert) tls.cert = readPem(files.cert, 'certificate file');
  if (files.key) tls.key = readPem(files.key, 'key file');
  if (files.insecure) tls.rejectUnauthorized = false;
  return tls;
}

function isAuthError(message: string): boolean {
  return /WRONGPASS|NOAUTH|invalid password|invalid username-password/i.test(message);
}

/** Turns any connection-level failure into a typed, redacted error. */
export function toConnectionError(err: unknown, url: string): BananasError {
  if (err instanceof BananasError) return err;
  const where = redactUrl(url);
  let message = redactSecrets(errorMessage(err), secretsOf(url));
  const silent = REPLY_TIMEOUT_ERROR.exec(message);
  if (silent) message = `no reply within ${Number(silent[1]) / 1000} s (connection dropped)`;
  if (isAuthError(message)) {
    return new RedisAuthError(`Redis at ${where} refused the credentials: ${message}`);
  }
  const topology = /^rediss?\+(cluster|sentinel):/i.exec(url)?.[1]?.toLowerCase();
  if (topology === 'cluster') {
    return new RedisUnavailableError(`cannot reach any node of the Redis Cluster at ${where}: ${message}`);
  }
  if (topology === 'sentinel') {
    return new RedisUnavailableError(`cannot reach the master through the sentinels at ${where}: ${message}`);
  }
  return new RedisUnavailableError(`cannot reach Redis at ${where}: ${message}`);
}

/**
 * Refuses ioredis' `keyPrefix`: ioredis adds it to the keys of plain commands, but bananas' script calls
 * get no prefix at all (neither their KEYS nor the keys they build from their arguments), so a client with
 * it would read and write two key spaces. The deployment's prefix is bananas' own `prefix` option
 * (`--prefix`, BANANAS_PREFIX).
 */
export function assertNoKeyPrefix(options: { keyPrefix?: string } | undefined): void {
  if (options?.keyPrefix) {
    throw new UsageError(
      `the ioredis option keyPrefix (${JSON.stringify(options.keyPrefix)}) is not supported: give the key prefix as bananas' prefix option (--prefix, BANANAS_PREFIX) instead`,
    );
  }
}

const lastErrors = new WeakMap<RedisClient, Error>();
const nodeErrors = new WeakMap<RedisClient, Error>();

/**
 * Creates a client for `options.url` (one server, `redis+cluster://` or `redis+sentinel://`); it connects
 * lazily (call {@link connectOrThrow} or let the first command connect). A malformed URL is a UsageError.
 */
export function createRedis(options: ConnectOptions): RedisClient {
  assertNoKeyPrefix(options.redisOptions);
  const url = options.url ?? DEFAULT_REDIS_URL;
  const topology = parseRedisUrl(url, redactUrl);
  let failedSince: number | undefined;
  let attempt = 0;
  const retry = (times: number): number => {
    attempt = times;
    const delayMs = reconnectDelayMs(times);
    options.onRetry?.({ attempt: times, delayMs });
    return delayMs;
  };
  const base: RedisOptions =
    options.mode === 'resilient'
      ? {
          maxRetriesPerRequest: null,
          enableOfflineQueue: true,
          retryStrategy: retry,
          // A blocking command (the worker's BLPOP) queued for, or sent on, a connection that died in a
          // failover could otherwise wait forever: ioredis ends it as timed out (null) after its own
          // timeout + 100 ms (2 s while queued offline).
          blockingTimeout: 2000,
        }
      : {
          maxRetriesPerRequest: 0,
          enableOfflineQueue: true,
          retryStrategy: () => null,
          connectTimeout: 5000,
        };
  const replyTimeoutMs =
    options.replyTimeoutMs ?? (options.mode === 'fail-fast' ? FAIL_FAST_REPLY_TIMEOUT_MS : undefined);
  if (replyTimeoutMs !== undefined) base.socketTimeout = replyTimeoutMs;
  let redis: RedisClient;
  if (topology.kind === 'cluster') {
    redis = createCluster(topology, options, base, retry);
  } else if (topology.kind === 'sentinel') {
    redis = new Redis({
      lazyConnect: true,
      connectionName: options.connectionName,
      ...base,
      ...sentinelOptions(topology, options),
      ...options.redisOptions,
    });
  } else {
    redis = new Redis(url, {
      lazyConnect: true,
      connectionName: options.connectionName,
      ...base,
      ...options.redisOptions,
    });
  }
  const isReplyTimeout = (err: Error): boolean => REPLY_TIMEOUT_ERROR.test(err.message);
  redis.on('error', (err: Error) => {
    // Errors surface through commands and the retry strategy; an unhandled 'error' event would crash.
    // The last one is kept: a failed connect() only says "Connection is closed".
    lastErrors.set(redis, err);
    failedSince ??= Date.now();
    if (isReplyTimeout(err)) options.onReplyTimeout?.();
  });
  if (isCluster(redis)) {
    // A node's own error (ECONNREFUSED, WRONGPASS) says more than the cluster's "Failed to refresh slots
    // cache" or a later "Connection is closed.".
    redis.on('node error', (err: Error) => {
      if (!nodeErrors.has(redis) || !/Connection is closed/.test(err.message)) nodeErrors.set(redis, err);
      if (isReplyTimeout(err)) options.onReplyTimeout?.();
    });
  }
  redis.on('close', () => {
    failedSince ??= Date.now();
    // ioredis 5 leaves the reply timer of a closed socket running: it would then go off on the next
    // connection, healthy or not, and drop it (fixed in ioredis 6), and keep a closed client's process
    // alive until then. A new one starts with the first call on the new socket.
    if (!isCluster(redis)) {
      const timed = redis as unknown as { socketTimeoutTimer?: NodeJS.Timeout };
      clearTimeout(timed.socketTimeoutTimer);
      timed.socketTimeoutTimer = undefined;
    }
  });
  redis.on('ready', () => {
    if (failedSince !== undefined && attempt > 0) {
      options.onRecovered?.({ downMs: Date.now() - failedSince });
    }
    failedSince = undefined;
    attempt = 0;
  });
  return redis;
}

/**
 * A Cluster client. Node connections take the URL's credentials and the TLS options; in resilient mode the
 * client waits through a failover (CLUSTERDOWN, MOVED to a promoted replica) and, if no node answers at all,
 * reconnects with the same backoff as a single server.
 */
function createCluster(
  topology: Extract<RedisTopology, { kind: 'cluster' }>,
  options: ConnectOptions,
  base: RedisOptions,
  retry: (times: number) => number,
): Cluster {
  const resilient = options.mode === 'resilient';
  const { retryStrategy: _unused, enableOfflineQueue, ...nodeBase } = base;
  void _unused;
  const redisOptions: ClusterOptions['redisOptions'] = {
    connectionName: options.connectionName,
    ...nodeBase,
    ...(topology.username !== undefined ? { username: topology.username } : {}),
    ...(topology.password !== undefined ? { password: topology.password } : {}),
    ...(topology.tls ? { tls: {} } : {}),
    ...options.redisOptions,
  };
  return new Cluster(topology.nodes, {
    lazyConnect: true,
    enableOfflineQueue,
    clusterRetryStrategy: resilient ? retry : () => null,
    redisOptions,
    // During a failover the slots answer CLUSTERDOWN or point at a dead master for a few seconds.
    retryDelayOnClusterDown: 300,
    retryDelayOnFailover: 300,
    retryDelayOnTryAgain: 300,
    maxRedirections: resilient ? 32 : 16,
    slotsRefreshTimeout: resilient ? 2000 : 5000,
    enableReadyCheck: true,
  });
}

/** ioredis Sentinel options: it asks the sentinels for the master, and again after every disconnect. */
function sentinelOptions(
  topology: Extract<RedisTopology, { kind: 'sentinel' }>,
  options: ConnectOptions,
): RedisOptions {
  const resilient = options.mode === 'resilient';
  return {
    sentinels: topology.sentinels,
    name: topology.masterName,
    ...(topology.username !== undefined ? { username: topology.username } : {}),
    ...(topology.password !== undefined ? { password: topology.password } : {}),
    ...(topology.sentinelUsername !== undefined ? { sentinelUsername: topology.sentinelUsername } : {}),
    ...(topology.sentinelPassword !== undefined ? { sentinelPassword: topology.sentinelPassword } : {}),
    ...(topology.db !== undefined ? { db: topology.db } : {}),
    ...(topology.tls ? { tls: {}, enableTLSForSentinelMode: true } : {}),
    sentinelRetryStrategy: resilient ? (times: number) => reconnectDelayMs(times) : () => null,
    // Reconnect at once when the sentinels announce a new master, instead of waiting for the old one.
    failoverDetector: resilient,
  };
}

/** Connects and checks the server answers (and accepts the credentials); throws a typed error otherwise. */
export async function connectOrThrow(redis: RedisClient, url: string = DEFAULT_REDIS_URL): Promise<void> {
  try {
    if (redis.status === 'wait') await redis.connect();
    await redis.ping();
  } catch (err) {
    redis.disconnect();
    throw toConnectionError(nodeErrors.get(redis) ?? rootCause(lastErrors.get(redis) ?? err), url);
  }
}

/**
 * The error to report for `err`, a call's failure on a connected client, when it failed because the
 * connection was lost ("Connection is closed."): what ended the connection (no reply within the reply
 * timeout, a reset, …) as {@link toConnectionError} words it. Undefined for any other failure.
 */
export function connectionLost(redis: RedisClient, err: unknown, url: string): BananasError | undefined {
  // A cluster client gives up with "Too many Cluster redirections. Last error: Error: Connection is closed."
  if (!(err instanceof Error) || !/Connection is closed/.test(err.message)) return undefined;
  return toConnectionError(nodeErrors.get(redis) ?? rootCause(lastErrors.get(redis) ?? err), url);
}

/** A cluster's "Failed to refresh slots cache" carries the error of the last node it tried. */
function rootCause(err: unknown): unknown {
  const last = (err as { lastNodeError?: unknown } | undefined)?.lastNodeError;
  return last instanceof Error ? last : err;
}
