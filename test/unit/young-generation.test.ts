import { describe, expect, it } from 'vitest';
import { hasOwnYoungGenerationSetting } from '../../src/cli/young-generation.js';

describe('hasOwnYoungGenerationSetting', () => {
  it('is false for node started without a young-generation setting', () => {
    expect(hasOwnYoungGenerationSetting([], undefined)).toBe(false);
    expect(hasOwnYoungGenerationSetting(['--enable-source-maps'], '--max-old-space-size=512')).toBe(false);
  });

  it('sees the settings that size the young generation, in node options or NODE_OPTIONS, either spelling', () => {
    expect(hasOwnYoungGenerationSetting(['--max-semi-space-size=8'], undefined)).toBe(true);
    expect(hasOwnYoungGenerationSetting([], '--max_semi_space_size=64')).toBe(true);
    expect(hasOwnYoungGenerationSetting([], '--trace-gc --semi-space-growth-factor=4')).toBe(true);
    expect(hasOwnYoungGenerationSetting(['--max-heap-size=256'], '')).toBe(true);
  });
});
