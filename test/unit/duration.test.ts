import { describe, expect, it } from 'vitest';
import { formatDuration, parseDuration } from '../../src/core/duration.js';
import { UsageError } from '../../src/core/errors.js';

describe('parseDuration', () => {
  it.each([
    ['30s', 30_000],
    ['5m', 300_000],
    ['1h30m', 5_400_000],
    ['1h', 3_600_000],
    ['500ms', 500],
    ['1.5s', 1500],
    ['.5s', 500],
    ['0', 0],
    ['0s', 0],
    ['1m30s', 90_000],
    ['2h45m10s500ms', 2 * 3_600_000 + 45 * 60_000 + 10_000 + 500],
    ['1500us', 1.5],
    ['1500µs', 1.5],
    ['2000000ns', 2],
    ['1.5h', 5_400_000],
    ['  30s  ', 30_000],
  ])('%j → %d ms', (text, ms) => {
    expect(parseDuration(text)).toBeCloseTo(ms, 9);
  });

  it('reads the original JOB_TIMEOUT default 5m', () => {
    expect(parseDuration('5m')).toBe(5 * 60 * 1000);
  });

  it.each([
    '',
    '   ',
    '10',
    '1.5',
    'abc',
    '5 m',
    '-1s',
    '+1s',
    '1h 30m',
    '30S',
    '5min',
    '1d',
    's',
    '30s!',
    '1h30',
    'm5',
  ])('refuses %j with a UsageError', (text) => {
    expect(() => parseDuration(text)).toThrow(UsageError);
  });

  it('says what was invalid and gives examples', () => {
    expect(() => parseDuration('10')).toThrow(/invalid duration "10".*500ms/);
    expect(() => parseDuration('abc', 'job timeout')).toThrow(/invalid job timeout "abc"/);
    try {
      parseDuration('5 m');
      expect.unreachable();
    } catch (err) {
      expect((err as UsageError).code).toBe('USAGE');
    }
  });
});

describe('formatDuration', () => {
  it.each([
    [0, '0ms'],
    [1, '1ms'],
    [250, '250ms'],
    [250.4, '250ms'],
    [999, '999ms'],
    [1000, '1s'],
    [1499, '1s'],
    [1500, '2s'],
    [30_000, '30s'],
    [59_000, '59s'],
    [60_000, '1m'],
    [61_000, '1m1s'],
    [90_000, '1m30s'],
    [3_600_000, '1h'],
    [3_601_000, '1h1s'],
    [3_723_000, '1h2m3s'],
    [5_400_000, '1h30m'],
    [25 * 3_600_000, '25h'],
  ])('%d ms → %s', (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
  });

  it('round-trips through parseDuration for whole seconds and sub-second values', () => {
    for (const ms of [0, 7, 999, 1000, 59_000, 61_000, 3_723_000, 5_400_000, 86_400_000]) {
      expect(parseDuration(formatDuration(ms))).toBe(ms);
    }
  });
});
