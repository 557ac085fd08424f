/** Flag types shared by commands: Go-style durations, priority lists, comma lists. */
import { Flags } from '@oclif/core';
import { parseDuration } from '../core/duration.js';
import { UsageError } from '../core/errors.js';
import { assertRoutingKey, isPriority, PRIORITIES, type Priority } from '../core/keys.js';

/** A Go-style duration (`30s`, `5m`), parsed to milliseconds. */
export const durationFlag = Flags.custom<number>({
  parse: async (input, _ctx, opts) => parseDuration(input, `--${opts.name}`),
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
    if (list.length === 0) throw new UsageError(`--${opts.name} needs at least one of ${PRIORITIES.join(', ')}`);
    for (const p of list) {
      if (!isPriority(p)) throw new UsageError(`--${opts.name}: unknown priority ${JSON.stringify(p)} (use ${PRIORITIES.join(', ')})`);
    }
    if (new Set(list).size !== list.length) throw new UsageError(`--${opts.name}: a priority is listed twice`);
    return list as Priority[];
  },
});

export const routingKeysFlag = Flags.custom<string[]>({
  parse: async (input, _ctx, opts) => {
    const list = parseCommaList(input);
    if (list.length === 0) throw new UsageError(`--${opts.name} needs at least one routing key`);
    return [...new Set(list.map(assertRoutingKey))];
  },
});

export const commaListFlag = Flags.custom<string[]>({
  parse: async (input, _ctx, opts) => {
    const list = parseCommaList(input);
    if (list.length === 0) throw new UsageError(`--${opts.name} needs at least one value`);
    return [...new Set(list)];
  },
});

export const positiveIntFlag = Flags.custom<number>({
  parse: async (input, _ctx, opts) => {
    const value = Number(input);
    if (!/^\d+$/.test(input.trim()) || !Number.isSafeInteger(value) || value < 1) {
      throw new UsageError(`--${opts.name} must be a whole number ≥ 1 (got ${JSON.stringify(input)})`);
    }
    return value;
  },
});
