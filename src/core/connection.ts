/**
 * Redis connections. Workers reconnect forever with the runbook's backoff (2, 4, 8, 16, 30 s max);
 * operator commands fail fast with a typed error. No password ever reaches a message or a log.
 */
import { readFileSync } from 'node:fs';
import type { ConnectionOptions as TlsConnectionOptions } from 'node:tls';
import { Redis, type RedisOptions } from 'ioredis';
import { RedisAuthError, RedisUnavailableError, BananasError, UsageError, errorMessage } from './errors.js';
import { passwordOf, redactSecrets, redactUrl } from './redact.js';

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
  /** Extra ioredis options (tests, TLS). */
  redisOptions?: RedisOptions;
}

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
  const message = redactSecrets(errorMessage(err), [passwordOf(url)]);
  if (isAuthError(message)) {
    return new RedisAuthError(`Redis at ${where} refused the credentials: ${message}`);
  }
  return new RedisUnavailableError(`cannot reach Redis at ${where}: ${message}`);
}

const lastErrors = new WeakMap<Redis, Error>();

/** Creates a client; it connects lazily (call {@link connectOrThrow} or let the first command connect). */
export function createRedis(options: ConnectOptions): Redis {
  const url = options.url ?? DEFAULT_REDIS_URL;
  let failedSince: number | undefined;
  let attempt = 0;
  const base: RedisOptions =
    options.mode === 'resilient'
      ? {
          maxRetriesPerRequest: null,
          enableOfflineQueue: true,
          retryStrategy: (times) => {
            attempt = times;
            const delayMs = reconnectDelayMs(times);
            options.onRetry?.({ attempt: times, delayMs });
            return delayMs;
          },
        }
      : {
          maxRetriesPerRequest: 0,
          enableOfflineQueue: true,
          retryStrategy: () => null,
          connectTimeout: 5000,
        };
  const redis = new Redis(url, {
    lazyConnect: true,
    connectionName: options.connectionName,
    ...base,
    ...options.redisOptions,
  });
  redis.on('error', (err: Error) => {
    // Errors surface through commands and the retry strategy; an unhandled 'error' event would crash.
    // The last one is kept: a failed connect() only says "Connection is closed".
    lastErrors.set(redis, err);
    failedSince ??= Date.now();
  });
  redis.on('close', () => {
    failedSince ??= Date.now();
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

/** Connects and checks the server answers (and accepts the credentials); throws a typed error otherwise. */
export async function connectOrThrow(redis: Redis, url: string = DEFAULT_REDIS_URL): Promise<void> {
  try {
    if (redis.status === 'wait') await redis.connect();
    await redis.ping();
  } catch (err) {
    redis.disconnect();
    throw toConnectionError(lastErrors.get(redis) ?? err, url);
  }
}
