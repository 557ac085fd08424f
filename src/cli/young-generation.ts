/**
 * A cap on V8's young generation for the `worker start` process.
 *
 * On a machine with a few GiB of memory or more, V8 lets a process's young generation grow to two
 * semi-spaces of 16 MiB, and a busy worker gets there within seconds: objects of the jobs in flight
 * survive each young collection, and once as many bytes survived as a semi-space holds, V8 doubles it.
 * At concurrency 200 that is about 14 MiB of resident memory more than semi-spaces of 8 MiB, for no
 * measurable throughput (docs/performance.md). The maximum is fixed when the process starts
 * (`--max-semi-space-size`), but the growth factor is read at each growth: so growth is switched off
 * (factor 1) once a doubling would take the young generation past the cap, and back on (factor 2, V8's
 * default) when V8 has shrunk it far enough, as it does after a quiet spell.
 *
 * The decision is made after each garbage collection, delivered an event-loop turn or two later: a
 * burst that grows the young generation twice within one turn (a run of synchronous work that keeps
 * megabytes of objects alive) can pass the cap until V8 shrinks it again. Only the `worker start`
 * process does this (a library user's process keeps its own settings). It is not done when the process
 * has a young-generation setting of its own, when V8's flags are frozen (`--freeze-flags-after-init`:
 * changing one would abort the process), or when BANANAS_YOUNG_GENERATION_CAP is `off`. If a later V8
 * drops the growth-factor flag, each change prints V8's "unrecognized flag" line and nothing else
 * happens; if a change throws, the cap is removed.
 */
import { PerformanceObserver } from 'node:perf_hooks';
import v8 from 'node:v8';

/** The cap: both semi-spaces together. */
export const YOUNG_GENERATION_CAP_BYTES = 16 * 2 ** 20;
const OWN_SETTING =
  /--(max[-_]semi[-_]space[-_]size|semi[-_]space[-_]growth[-_]factor|max[-_]heap[-_]size|freeze[-_]flags[-_]after[-_]init)\b/;

/**
 * Whether the cap stays off: node has a young-generation setting of its own (or frozen flags), in its
 * options or NODE_OPTIONS, or BANANAS_YOUNG_GENERATION_CAP is `off`.
 */
export function capIsOff(
  execArgv: readonly string[] = process.execArgv,
  env: NodeJS.ProcessEnv = process.env,
): boolean {
  return (
    execArgv.some((arg) => OWN_SETTING.test(arg)) ||
    OWN_SETTING.test(env.NODE_OPTIONS ?? '') ||
    /^(off|0|false|no)$/i.test(env.BANANAS_YOUNG_GENERATION_CAP ?? '')
  );
}

/**
 * Whether the young generation may grow: after V8's next doubling, its two semi-spaces of
 * `semiSpaceBytes` each would still fit in `capBytes`.
 */
export function mayGrow(semiSpaceBytes: number, capBytes = YOUNG_GENERATION_CAP_BYTES): boolean {
  return 2 * (2 * semiSpaceBytes) <= capBytes;
}

/**
 * One semi-space's capacity now, in bytes (what V8 reports as the new space's used and available
 * bytes: the space being allocated in), or undefined if V8 does not report it.
 */
function semiSpaceBytes(): number | undefined {
  const space = v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space');
  return space === undefined ? undefined : space.space_used_size + space.space_available_size;
}

let installed = false;

/**
 * Keeps the young generation at or under {@link YOUNG_GENERATION_CAP_BYTES} (see above for when it
 * cannot) until the returned function is called. It cannot shrink a young generation already past the
 * cap, so the earlier it is called the better: bin/run.js calls it for `worker start` before anything
 * else loads. Only the first call installs the cap (later ones return a function that does nothing).
 */
export function capYoungGeneration(): () => void {
  if (installed || capIsOff() || semiSpaceBytes() === undefined) return () => {};
  installed = true;
  let growing = true;
  let observer: PerformanceObserver | undefined;
  const setGrowing = (grow: boolean): void => {
    if (grow === growing) return;
    growing = grow;
    v8.setFlagsFromString(`--semi-space-growth-factor=${grow ? 2 : 1}`);
  };
  const release = (): void => {
    observer?.disconnect();
    observer = undefined;
    try {
      setGrowing(true);
    } catch {
      // Nothing more to undo.
    }
    installed = false;
  };
  const check = (): void => {
    try {
      const bytes = semiSpaceBytes();
      if (bytes !== undefined) setGrowing(mayGrow(bytes));
    } catch {
      release();
    }
  };
  check();
  observer = new PerformanceObserver(check);
  observer.observe({ entryTypes: ['gc'] });
  return release;
}
