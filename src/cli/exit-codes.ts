/**
 * The one table from outcome to exit code. README documents it; scripts and CI rely on it.
 */
import type { BananasErrorCode } from '../core/errors.js';

export const ExitCode = {
  OK: 0,
  /** Unexpected internal error. */
  ERROR: 1,
  /** Bad flags, arguments or configuration values. */
  USAGE: 2,
  /** The job (or other object) asked for does not exist. */
  NOT_FOUND: 3,
  /** Redis unreachable, or it refused the credentials. */
  REDIS: 4,
  /** `health`: warning. */
  HEALTH_WARNING: 5,
  /** `health`: critical. */
  HEALTH_CRITICAL: 6,
  /** A scan found problems. */
  PROBLEMS_FOUND: 7,
  /** Refused because of existing or concurrently changed state (duplicate id, lost lease, edit conflict). */
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
