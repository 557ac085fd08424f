/**
 * A cap on V8's young generation for the `worker start` process.
 *
 * A busy worker's young generation grows to V8's default maximum (two semi-spaces of 16 MiB): objects
 * of the jobs in flight survive each young collection, and once as many bytes survived as the space
 * holds, V8 doubles it. At concurrency 200 that is about 15 MiB of resident memory more than a
 * young generation of 16 MiB, for no measurable throughput (docs/performance.md). The maximum is fixed
 * when the process starts (`--max-semi-space-size`), but the growth factor is read at each growth: so
 * growth is switched off (factor 1) while the young generation is at the cap, and back on (factor 2,
 * V8's default) when V8 has shrunk it below the cap, as it does after a quiet spell.
 *
 * Only the `worker start` process does this (a library user's process keeps its own settings), and
 * not when the process was started with a young-generation setting of its own (NODE_OPTIONS or node
 * options). If a later V8 ignores the change, the young generation just grows as before.
 */
import { PerformanceObserver } from 'node:perf_hooks';
import v8 from 'node:v8';

/** The cap: both semi-spaces together, as V8 reports the new space's size. */
export const YOUNG_GENERATION_CAP_BYTES = 16 * 2 ** 20;
const OWN_SETTING =
  /--(max[-_]semi[-_]space[-_]size|semi[-_]space[-_]growth[-_]factor|max[-_]heap[-_]size)\b/;

/** Whether node was started with a young-generation setting of its own. */
export function hasOwnYoungGenerationSetting(
  execArgv: readonly string[] = process.execArgv,
  nodeOptions: string | undefined = process.env.NODE_OPTIONS,
): boolean {
  return execArgv.some((arg) => OWN_SETTING.test(arg)) || OWN_SETTING.test(nodeOptions ?? '');
}

/** The new space's size now (both semi-spaces), in bytes; undefined if V8 does not report it. */
function youngGenerationBytes(): number | undefined {
  return v8.getHeapSpaceStatistics().find((space) => space.space_name === 'new_space')?.space_size;
}

let installed = false;

/**
 * Keeps the young generation at or under {@link YOUNG_GENERATION_CAP_BYTES} until the returned function
 * is called: the size is checked after every garbage collection (V8 grows or shrinks the young generation
 * only in one). It cannot shrink a young generation already past the cap, so the earlier it is called the
 * better: bin/run.js calls it for `worker start` before anything else loads. Only the first call installs
 * the cap (later ones return a function that does nothing), and none does when the process has its own
 * setting.
 */
export function capYoungGeneration(): () => void {
  if (installed || hasOwnYoungGenerationSetting() || youngGenerationBytes() === undefined) return () => {};
  installed = true;
  let growing = true;
  const check = (): void => {
    const bytes = youngGenerationBytes();
    if (bytes === undefined) return;
    const grow = bytes < YOUNG_GENERATION_CAP_BYTES;
    if (grow === growing) return;
    growing = grow;
    v8.setFlagsFromString(`--semi-space-growth-factor=${grow ? 2 : 1}`);
  };
  check();
  const observer = new PerformanceObserver(check);
  observer.observe({ entryTypes: ['gc'] });
  return () => {
    observer.disconnect();
    if (!growing) v8.setFlagsFromString('--semi-space-growth-factor=2');
    installed = false;
  };
}
