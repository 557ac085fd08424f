/**
 * Typed errors. Every error bananas raises on purpose is a BananasError with a stable code; the CLI maps
 * codes to exit codes in one table (src/cli/exit-codes.ts).
 */
export type BananasErrorCode =
  | 'USAGE'
  | 'NOT_FOUND'
  | 'DUPLICATE_JOB'
  | 'INVALID_JOB'
  | 'REDIS_UNAVAILABLE'
  | 'REDIS_AUTH'
  | 'REDIS_ERROR'
  | 'HANDLERS'
  | 'CONFLICT';

export class BananasError extends Error {
  readonly code: BananasErrorCode;

  constructor(code: BananasErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** Bad flags, bad arguments, bad configuration values. */
export class UsageError extends BananasError {
  constructor(message: string) {
    super('USAGE', message);
  }
}

export class NotFoundError extends BananasError {
  constructor(message: string) {
    super('NOT_FOUND', message);
  }
}

export class DuplicateJobError extends BananasError {
  readonly jobId: string;

  constructor(jobId: string) {
    super('DUPLICATE_JOB', `a job with id ${JSON.stringify(jobId)} already exists; nothing was written`);
    this.jobId = jobId;
  }
}

/** A job document that is not valid JSON or not a job. */
export class InvalidJobError extends BananasError {
  constructor(message: string) {
    super('INVALID_JOB', message);
  }
}

export class RedisUnavailableError extends BananasError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('REDIS_UNAVAILABLE', message, options);
  }
}

export class RedisAuthError extends BananasError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('REDIS_AUTH', message, options);
  }
}

export class HandlersError extends BananasError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('HANDLERS', message, options);
  }
}

/** Someone else changed the state we were about to change (a lost lease, a concurrent edit). */
export class ConflictError extends BananasError {
  constructor(message: string) {
    super('CONFLICT', message);
  }
}

export function errorMessage(err: unknown): string {
  if (err instanceof Error) {
    // A MULTI that Redis refused as a whole says only EXECABORT; the reason (an ACL's NOPERM, a
    // WRONGTYPE…) is the refused command's error, which ioredis keeps in previousErrors.
    const previous = (err as { previousErrors?: unknown }).previousErrors;
    if (/^EXECABORT\b/.test(err.message) && Array.isArray(previous) && previous[0] instanceof Error) {
      return previous[0].message;
    }
    return err.message;
  }
  try {
    return String(err);
  } catch {
    // A thrown value with no way to print it (an object without a prototype, a throwing toString).
    return `${Object.prototype.toString.call(err)} (thrown value cannot be printed)`;
  }
}
