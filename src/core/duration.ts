import { UsageError } from './errors.js';

const UNIT_MS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

/**
 * Parses a Go-style duration (`300ms`, `30s`, `5m`, `1h30m`, `1.5s`) into milliseconds, as the original
 * reads `JOB_TIMEOUT`. A bare number is refused (Go refuses it too) except `0`.
 */
export function parseDuration(text: string, what = 'duration'): number {
  const input = text.trim();
  if (input === '0') return 0;
  const pattern = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)/gy;
  let total = 0;
  let consumed = 0;
  let match: RegExpExecArray | null;
  while ((match = pattern.exec(input)) !== null) {
    total += Number(match[1]) * (UNIT_MS[match[2] as string] as number);
    consumed = pattern.lastIndex;
  }
  if (input === '' || consumed !== input.length) {
    throw new UsageError(
      `invalid ${what} ${JSON.stringify(text)}: use a Go-style duration such as 500ms, 30s, 5m or 1h30m`,
    );
  }
  return total;
}

/** Formats milliseconds compactly (`1h2m3s`, `250ms`). */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  let seconds = Math.round(ms / 1000);
  const h = Math.floor(seconds / 3600);
  seconds -= h * 3600;
  const m = Math.floor(seconds / 60);
  seconds -= m * 60;
  return `${h ? `${h}h` : ''}${m ? `${m}m` : ''}${seconds || (!h && !m) ? `${seconds}s` : ''}`;
}
