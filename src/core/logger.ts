/**
 * Logging: JSON lines (pino) by default, human-readable when writing to a TTY or with format `pretty`.
 * Values are never allowed to carry a Redis password: callers redact URLs before logging them.
 */
import { pino, type Logger } from 'pino';
import pretty from 'pino-pretty';

export type { Logger } from 'pino';
export type LogFormat = 'json' | 'pretty' | 'auto';

export interface LoggerOptions {
  level?: string;
  format?: LogFormat;
  /** Destination stream (default: stdout). */
  destination?: NodeJS.WritableStream;
  name?: string;
}

const LEVELS = new Set(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']);

export function isLogLevel(level: string): boolean {
  return LEVELS.has(level);
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const destination = options.destination ?? process.stdout;
  const format = options.format ?? 'auto';
  const usePretty =
    format === 'pretty' || (format === 'auto' && (destination as NodeJS.WriteStream).isTTY === true);
  const base = { level: options.level ?? 'info', name: options.name ?? 'bananas' };
  if (usePretty) {
    return pino(
      base,
      pretty({ destination, colorize: (destination as NodeJS.WriteStream).isTTY === true, sync: true }),
    );
  }
  return pino(base, destination);
}
