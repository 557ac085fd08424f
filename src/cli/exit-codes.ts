/**
 * The one table from outcome to exit code. README documents it; scripts and CI rely on it.
 */
import { errorMessage, type BananasErrorCode } from '../core/errors.js';

export const ExitCode = {
  OK: 0,
  /** Unexpected internal error. */
  ERROR: 1,
  /** Bad flags, arguments or configuration values. */
  USAGE: 2,
  /** The job (or other object) asked for does not exist. */
  NOT_FOUND: 3,
  /** Redis unreachable, refused the credentials or the command (NOPERM), or cannot serve it now (READONLY, OOM…). */
  REDIS: 4,
  /** `health`: warning. */
  HEALTH_WARNING: 5,
  /** `health`: critical. */
  HEALTH_CRITICAL: 6,
  /** A scan found problems. */
  PROBLEMS_FOUND: 7,
  /** Refused because of existing or concurrently changed state (duplicate id, lost lease, edit conflict, WRONGTYPE). */
  CONFLICT: 8,
} as const;

export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode];

const BY_ERROR_CODE: Record<BananasErrorCode, ExitCodeValue> = {
  USAGE: ExitCode.USAGE,
  HANDLERS: ExitCode.USAGE,
  INVALID_JOB: ExitCode.USAGE,
  NOT_FOUND: ExitCode.NOT_FOUND,
  REDIS_UNAVAILABLE: ExitCode.REDIS,
  REDIS_AUTH: ExitCode.REDIS,
  REDIS_ERROR: ExitCode.ERROR,
  DUPLICATE_JOB: ExitCode.CONFLICT,
  CONFLICT: ExitCode.CONFLICT,
};

export function exitCodeFor(code: BananasErrorCode): ExitCodeValue {
  return BY_ERROR_CODE[code];
}

/** What an error reply of Redis means for the command that got it, when it is not a bug of ours. */
export interface RedisReplyOutcome {
  exitCode: ExitCodeValue;
  code: 'REDIS_AUTH' | 'REDIS_UNAVAILABLE' | 'CONFLICT';
  message: string;
}

/** Redis cannot serve the command now: a read-only replica, out of memory, busy with a script, loading… */
const UNABLE = /^(READONLY|OOM|BUSY|LOADING|MASTERDOWN|MISCONF|NOREPLICAS|CLUSTERDOWN|TRYAGAIN)\b/;

/**
 * Maps Redis error replies that are the server's state, not a bug (README's exit codes): NOPERM (the ACL
 * refuses the command) and a Redis that cannot serve it now exit 4; a key holding the wrong kind of value
 * (WRONGTYPE) is unexpected state, exit 8, and the key is named when the command had one.
 */
export function redisReplyOutcome(err: unknown): RedisReplyOutcome | undefined {
  // An error inside a script ends with where in the script it happened: of no use to an operator.
  const message = errorMessage(err).replace(/\s*script: [0-9a-f]{40}, on @user_script:\d+\.?$/, '');
  if (/^NOPERM\b/.test(message)) return { exitCode: ExitCode.REDIS, code: 'REDIS_AUTH', message };
  if (UNABLE.test(message)) return { exitCode: ExitCode.REDIS, code: 'REDIS_UNAVAILABLE', message };
  if (/^WRONGTYPE\b/.test(message)) {
    const command = (err as { command?: { name?: string; args?: unknown[] } }).command;
    const key = command?.args?.[0];
    const scripted = command?.name === undefined || /^eval/i.test(command.name);
    return {
      exitCode: ExitCode.CONFLICT,
      code: 'CONFLICT',
      message: !scripted && typeof key === 'string' ? `${key}: ${message}` : message,
    };
  }
  return undefined;
}
