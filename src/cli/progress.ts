/**
 * Progress on stderr for long work: a spinner with a count and a rate on a terminal, nothing otherwise
 * (and never with --json, so stdout stays one JSON document).
 */
import ora, { type Ora } from 'ora';
import { formatCount } from './render.js';

export interface Progress {
  /** Reports the running total. */
  update(done: number, total?: number): void;
  stop(finalText?: string): void;
}

export function startProgress(label: string, options: { json: boolean }): Progress {
  const enabled = process.stderr.isTTY === true && !options.json;
  if (!enabled) return { update: () => undefined, stop: () => undefined };
  const started = Date.now();
  const spinner: Ora = ora({ stream: process.stderr, text: label }).start();
  return {
    update(done, total) {
      const seconds = Math.max(0.001, (Date.now() - started) / 1000);
      const rate = Math.round(done / seconds);
      spinner.text = `${label}: ${formatCount(done)}${total !== undefined ? ` / ${formatCount(total)}` : ''} (${formatCount(rate)}/s)`;
    },
    stop(finalText) {
      if (finalText) spinner.succeed(finalText);
      else spinner.stop();
    },
  };
}

/** One spinner per phase of a multi-phase operation, each started on its first update; stop() stops them all. */
export function startPhasedProgress<P extends string>(
  labels: Record<P, string>,
  options: { json: boolean },
): { update(phase: P, done: number, total?: number): void; stop(): void } {
  const started = new Map<P, Progress>();
  return {
    update(phase, done, total) {
      let progress = started.get(phase);
      if (!progress) {
        progress = startProgress(labels[phase], options);
        started.set(phase, progress);
      }
      progress.update(done, total);
    },
    stop() {
      for (const progress of started.values()) progress.stop();
    },
  };
}
