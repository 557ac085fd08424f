/** Reading operator input: inline JSON or `@file`, and times. */
import { readFileSync } from 'node:fs';
import { parseTimestamp } from '../core/codec.js';
import { UsageError } from '../core/errors.js';

/** `--payload '{"a":1}'` or `--payload @payload.json`; validated as JSON. */
export function readJsonArgument(value: string, flag: string): string {
  let text = value;
  if (value.startsWith('@')) {
    const path = value.slice(1);
    try {
      text = readFileSync(path, 'utf8');
    } catch (err) {
      throw new UsageError(
        `${flag}: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      );
    }
  }
  try {
    JSON.parse(text);
  } catch (err) {
    throw new UsageError(`${flag} is not valid JSON: ${(err as Error).message}`);
  }
  return text.trim();
}

/**
 * An RFC 3339 time, e.g. 2030-01-02T03:04:05Z. Parsed as the job documents' times are: out-of-range fields
 * (30 February) are refused rather than rolled over, and a time without an offset is UTC (not the local zone).
 */
export function parseTime(value: string, flag: string): Date {
  const date = parseTimestamp(value.trim());
  if (date === undefined) {
    throw new UsageError(
      `${flag}: invalid time ${JSON.stringify(value)} (use RFC 3339, e.g. 2030-01-02T03:04:05Z)`,
    );
  }
  return date;
}
