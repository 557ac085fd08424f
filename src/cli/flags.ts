/** Flag types shared by commands: Go-style durations, priority lists, comma lists. */
import { Flags } from '@oclif/core';
import { parseDuration } from '../core/duration.js';
import { UsageError } from '../core/errors.js';
import { isPriority, isValidRoutingKey, PRIORITIES, type Priority } from '../core/keys.js';

/** A flag as messages name it, with its environment variable (the bad value may have come from there). */
function label(opts: { name: string; env?: string }): string {
  return opts.env ? `--${opts.name} (${opts.env})` : `--${opts.name}`;
}

/** A Go-style duration (`30s`, `5m`), parsed to milliseconds. */
export const durationFlag = Flags.custom<number>({
  parse: async (input, _ctx, opts) => parseDuration(input, label(opts)),
});

export function parseCommaList(input: string): string[] {
  return input
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

/** `high,normal,low` in poll order; each at most once. */
export const prioritiesFlag = Flags.custom<Priority[]>({
  parse: async (input, _ctx, opts) => {
    const list = parseCommaList(input);
    if (list.length === 0)
      throw new UsageError(`${label(opts)} needs at least one of ${PRIORITIES.join(', ')}`);
    for (const p of list) {
      if (!isPriority(p))
        throw new UsageError(
          `${label(opts)}: unknown priority ${JSON.stringify(p)} (use ${PRIORITIES.join(', ')})`,
        );
    }
    if (new Set(list).size !== list.length)
      throw new UsageError(`${label(opts)}: a priority is listed twice`);
    return list as Priority[];
  },
});

export const routingKeysFlag = Flags.custom<string[]>({
  parse: async (input, _ctx, opts) => {
    const list = parseCommaList(input);
    if (list.length === 0) throw new UsageError(`${label(opts)} needs at least one routing key`);
    for (const key of list) {
      if (!isValidRoutingKey(key)) {
        throw new UsageError(
          `${label(opts)}: invalid routing key ${JSON.stringify(key)}: use 1-64 characters of A-Z a-z 0-9 _ -`,
        );
      }
    }
    return [...new Set(list)];
  },
});

export const commaListFlag = Flags.custom<string[]>({
  parse: async (input, _ctx, opts) => {
    const list = parseCommaList(input);
    if (list.length === 0) throw new UsageError(`${label(opts)} needs at least one value`);
    return [...new Set(list)];
  },
});

export const positiveIntFlag = Flags.custom<number>({
  parse: async (input, _ctx, opts) => {
    const value = Number(input);
    if (!/^\d+$/.test(input.trim()) || !Number.isSafeInteger(value) || value < 1) {
      throw new UsageError(`${label(opts)} must be a whole number ≥ 1 (got ${JSON.stringify(input)})`);
    }
    return value;
  },
});
