/**
 * Job handlers: a module maps job names to async functions. Handlers load only from the path the
 * operator gives; nothing from a job is ever used as a path or executed.
 */
import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { existsSync } from 'node:fs';
import type { Job } from './codec.js';
import { HandlersError } from './errors.js';
import type { Logger } from './logger.js';

/** The job a handler receives: the document's fields plus its payload parsed as `data`. */
export interface HandlerJob<T = unknown> extends Job {
  data: T;
}

export interface HandlerContext {
  /** Fired when the job times out (JOB_TIMEOUT) and when the worker gives up on it at shutdown. */
  signal: AbortSignal;
  logger: Logger;
  /** 1 for the first run, 2 for the first retry, … */
  attempt: number;
  workerId: string;
}

/** Returns the job's result (stored as JSON in the result backend) or throws to fail the attempt. */
export type JobHandler<T = unknown> = (job: HandlerJob<T>, ctx: HandlerContext) => unknown;
export type HandlerMap = Record<string, JobHandler>;

/**
 * Imports a handlers module: its default export (an object of name → function) or its named function
 * exports. Throws HandlersError with one clear line when the file is missing or exports no function.
 */
export async function loadHandlers(path: string, cwd: string = process.cwd()): Promise<HandlerMap> {
  const absolute = isAbsolute(path) ? path : resolve(cwd, path);
  if (!existsSync(absolute)) throw new HandlersError(`handlers module not found: ${absolute}`);
  let mod: Record<string, unknown>;
  try {
    mod = (await import(pathToFileURL(absolute).href)) as Record<string, unknown>;
  } catch (err) {
    throw new HandlersError(`cannot load handlers module ${absolute}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  const source =
    mod.default && typeof mod.default === 'object' ? (mod.default as Record<string, unknown>) : mod;
  const handlers: HandlerMap = {};
  for (const [name, value] of Object.entries(source)) {
    if (name !== 'default' && typeof value === 'function') handlers[name] = value as JobHandler;
  }
  if (Object.keys(handlers).length === 0) {
    throw new HandlersError(
      `handlers module ${absolute} exports no handler: export functions named after job names, or a default object of them`,
    );
  }
  return handlers;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    if (signal.aborted) return reject(signal.reason as Error);
    const timer = setTimeout(resolvePromise, ms);
    signal.addEventListener(
      'abort',
      () => {
        clearTimeout(timer);
        reject(signal.reason as Error);
      },
      { once: true },
    );
  });
}

function field(data: unknown, key: string): unknown {
  return data !== null && typeof data === 'object' ? (data as Record<string, unknown>)[key] : undefined;
}

/** Built-in handlers for demos and smoke tests (`worker start --demo-handlers`). */
export const demoHandlers: HandlerMap = {
  /** Returns its payload. */
  echo: (job) => job.data,
  /** Waits `ms` milliseconds (payload `{ "ms": 100 }`), honouring the abort signal. */
  sleep: async (job, ctx) => {
    const ms = Number(field(job.data, 'ms') ?? 100);
    await sleep(Number.isFinite(ms) ? ms : 100, ctx.signal);
    return { slept_ms: ms };
  },
  /** Always throws (payload `{ "message": "…" }`). */
  fail: (job) => {
    throw new Error(String(field(job.data, 'message') ?? 'demo failure'));
  },
  /** Fails until attempt `succeed_on` (default 2), then succeeds. */
  flaky: (job, ctx) => {
    const succeedOn = Number(field(job.data, 'succeed_on') ?? 2);
    if (ctx.attempt < succeedOn) throw new Error(`flaky: attempt ${ctx.attempt} fails`);
    return { attempt: ctx.attempt };
  },
};
