/** Reading operator input: inline JSON or `@file`, and times. */
import { readFileSync } from 'node:fs';
import { UsageError } from '../core/errors.js';

/** `--payload '{"a":1}'` or `--payload @payload.json`; validated as JSON. */
export function readJsonArgument(value: string, flag: string): string {
  let text = value;
  if (value.startsWith('@')) {
    const path = value.slice(1);
    try {
      text = readFileSync(path, 'utf8');
    } catch (err) {
      throw new UsageError(`${flag}: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  }
  try {
    JSON.parse(text);
  } catch (err) {
    throw new UsageError(`${flag} is not valid JSON: ${(err as Error).message}`);
  }
  return text.trim();
}

/** An RFC 3339 / ISO 8601 time, e.g. 2030-01-02T03:04:05Z. */
export function parseTime(value: string, flag: string): Date {
  const date = new Date(value);
  if (!/^\d{4}-\d{2}-\d{2}/.test(value) || Number.isNaN(date.getTime())) {
    throw new UsageError(`${flag}: invalid time ${JSON.stringify(value)} (use RFC 3339, e.g. 2030-01-02T03:04:05Z)`);
  }
  return date;
}
