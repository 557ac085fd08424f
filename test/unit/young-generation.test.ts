import { describe, expect, it } from 'vitest';
import { capIsOff, mayGrow, YOUNG_GENERATION_CAP_BYTES } from '../../src/cli/young-generation.js';

const MiB = 2 ** 20;

describe('capIsOff', () => {
  it('is false for node started without a young-generation setting', () => {
    expect(capIsOff([], {})).toBe(false);
    expect(capIsOff(['--enable-source-maps'], { NODE_OPTIONS: '--max-old-space-size=512' })).toBe(false);
    expect(capIsOff([], { BANANAS_YOUNG_GENERATION_CAP: 'on' })).toBe(false);
  });

  it('sees the settings that size the young generation, in node options or NODE_OPTIONS, either spelling', () => {
    expect(capIsOff(['--max-semi-space-size=8'], {})).toBe(true);
    expect(capIsOff([], { NODE_OPTIONS: '--max_semi_space_size=64' })).toBe(true);
    expect(capIsOff([], { NODE_OPTIONS: '--trace-gc --semi-space-growth-factor=4' })).toBe(true);
    expect(capIsOff(['--max-heap-size=256'], { NODE_OPTIONS: '' })).toBe(true);
  });

  it('stays off when V8 flags are frozen (changing one would abort), or when turned off by name', () => {
    expect(capIsOff(['--freeze-flags-after-init'], {})).toBe(true);
    expect(capIsOff([], { BANANAS_YOUNG_GENERATION_CAP: 'off' })).toBe(true);
    expect(capIsOff([], { BANANAS_YOUNG_GENERATION_CAP: '0' })).toBe(true);
  });
});

describe('mayGrow', () => {
  it('lets semi-spaces of 1, 2 and 4 MiB double (16 MiB in all at most) and stops at 8', () => {
    expect(YOUNG_GENERATION_CAP_BYTES).toBe(16 * MiB);
    // V8 reports a semi-space a little under its size (page headers).
    for (const mib of [1, 2, 4]) expect(mayGrow(mib * MiB - 70_000)).toBe(true);
    expect(mayGrow(8 * MiB - 140_000)).toBe(false);
  });

  it('stops a young generation that V8 shrank to an odd size above a quarter of the cap', () => {
    expect(mayGrow(5.25 * MiB)).toBe(false); // doubling would make 21 MiB
    expect(mayGrow(4 * MiB)).toBe(true);
  });
});
