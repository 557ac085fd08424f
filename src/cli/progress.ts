/**
 * Progress on stderr for long work: a spinner with a count and a rate on a terminal, nothing otherwise
 * (and never with --json, so stdout stays one JSON document).
 */
import ora, { type Ora } from 'ora';

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
      spinner.text = `${label}: ${done.toLocaleString('en-US')}${total !== undefined ? ` / ${total.toLocaleString('en-US')}` : ''} (${rate.toLocaleString('en-US')}/s)`;
    },
    stop(finalText) {
      if (finalText) spinner.succeed(finalText);
      else spinner.stop();
    },
  };
}
