/**
 * Running the built CLI end to end for the integration tests: a snapshot of the build, a child process
 * with a controlled environment and a hard timeout, the one-line error check, and small Redis helpers.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Redis } from 'ioredis';
import { expect } from 'vitest';
import { scanKeys as scanEveryMaster } from '../../src/core/iterate.js';
import { escapeGlob } from '../../src/core/keys.js';

export const PROJECT_ROOT = fileURLToPath(new URL('../../', import.meta.url));

/**
 * How long a CLI process may run before it is killed (reported as timedOut), unless a test says otherwise:
 * a command that works exits in a second or two, but a loaded machine running two test files at once
 * has taken 15 s to start one. It stays under the 30 s test timeout, so a hang is reported as one.
 */
export const CLI_TIME_LIMIT_MS = 25_000;

function buildIsComplete(root: string): boolean {
  // scripts/build.mjs removes dist/, runs tsc, then copies the Lua scripts last.
  return [
    'dist/commands/job/enqueue.js',
    'dist/commands/worker/start.js',
    'dist/commands/demo.js',
    'dist/core/lua',
  ].every((path) => existsSync(join(root, path)));
}

export interface SnapshotBuild {
  root: string;
  /** bin/run.js of the snapshot. */
  bin: string;
  remove: () => void;
}

/**
 * Copies the built CLI (bin/, dist/, package.json; node_modules linked) to a temporary directory, so a
 * concurrent `npm run build` (which deletes dist/) cannot pull the files out from under a running test.
 * Fails clearly when there is no build.
 */
export async function snapshotBuild(waitMs = 30_000): Promise<SnapshotBuild> {
  if (!existsSync(join(PROJECT_ROOT, 'dist/commands'))) {
    throw new Error('dist/commands is missing: run `npm run build` first (`npm test` does it)');
  }
  const deadline = Date.now() + waitMs;
  for (;;) {
    const root = mkdtempSync(join(tmpdir(), 'bananas-cli-test-'));
    const remove = () => rmSync(root, { recursive: true, force: true });
    try {
      cpSync(join(PROJECT_ROOT, 'dist'), join(root, 'dist'), { recursive: true });
      cpSync(join(PROJECT_ROOT, 'bin'), join(root, 'bin'), { recursive: true });
      cpSync(join(PROJECT_ROOT, 'package.json'), join(root, 'package.json'));
      symlinkSync(join(PROJECT_ROOT, 'node_modules'), join(root, 'node_modules'), 'dir');
      if (buildIsComplete(root)) return { root, bin: join(root, 'bin/run.js'), remove };
    } catch {
      // dist/ was being rewritten while we copied it; try again.
    }
    remove();
    if (Date.now() > deadline)
      throw new Error('dist/ is incomplete: run `npm run build` first (`npm test` does it)');
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** process.env without anything that would configure bananas behind the test's back, plus NO_COLOR. */
export function cleanEnv(overrides: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (
      /^(REDIS_URL|BANANAS_.*|WORKER_.*|JOB_TIMEOUT|LOG_LEVEL|LOG_FORMAT|DEBUG|FORCE_COLOR|NODE_OPTIONS)$/.test(
        key,
      )
    ) {
      continue;
    }
    env[key] = value;
  }
  env.NO_COLOR = '1';
  for (const [key, value] of Object.entries(overrides)) {
    if (value === undefined) delete env[key];
    else env[key] = value;
  }
  return env;
}

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** The process was still running after the timeout and was killed. */
  timedOut: boolean;
}

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  timeoutMs?: number;
}

export interface CliProcess {
  child: ChildProcess;
  /** Resolves when the process has exited and its output is closed. */
  done: Promise<CliResult>;
  /** stdout and stderr so far, interleaved as they arrived. */
  output: () => string;
  /** Resolves when `text` has appeared in stdout or stderr; rejects with the output tail on timeout. */
  waitForOutput: (text: string | RegExp, timeoutMs?: number) => Promise<void>;
}

/** Starts `node <bin> ...args`; it is killed with SIGKILL after `timeoutMs` (reported as timedOut). */
export function startCli(bin: string, args: string[], options: RunOptions = {}): CliProcess {
  const child = spawn(process.execPath, [bin, ...args], {
    cwd: options.cwd ?? PROJECT_ROOT,
    env: options.env ?? cleanEnv(),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  let timedOut = false;
  let combined = '';
  const listeners = new Set<() => void>();
  const collect = (stream: 'stdout' | 'stderr') => (chunk: Buffer) => {
    const text = chunk.toString('utf8');
    if (stream === 'stdout') stdout += text;
    else stderr += text;
    combined += text;
    for (const listener of listeners) listener();
  };
  child.stdout.on('data', collect('stdout'));
  child.stderr.on('data', collect('stderr'));
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, options.timeoutMs ?? CLI_TIME_LIMIT_MS);
  const done = new Promise<CliResult>((resolve, reject) => {
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, timedOut });
    });
  });
  const waitForOutput = (text: string | RegExp, timeoutMs = CLI_TIME_LIMIT_MS) =>
    new Promise<void>((resolve, reject) => {
      const matches = () => (typeof text === 'string' ? combined.includes(text) : text.test(combined));
      if (matches()) return resolve();
      const check = () => {
        if (!matches()) return;
        clearTimeout(timer);
        listeners.delete(check);
        resolve();
      };
      const timer = setTimeout(() => {
        listeners.delete(check);
        reject(new Error(`timed out waiting for ${String(text)} in output:\n${combined.slice(-2000)}`));
      }, timeoutMs);
      listeners.add(check);
    });
  return { child, done, output: () => combined, waitForOutput };
}

/** Runs `node <bin> ...args` to completion. */
export function runCli(bin: string, args: string[], options: RunOptions = {}): Promise<CliResult> {
  return startCli(bin, args, options).done;
}

/** stderr is exactly one line `bananas: <message>`; returns the message. */
export function oneErrorLine(result: { stderr: string }): string {
  expect(result.stderr, 'stderr should be one line').toMatch(/^bananas: [^\n]+\n$/);
  return result.stderr.slice('bananas: '.length, -1);
}

/**
 * Every key matching `pattern`, sorted, each once (SCAN, never KEYS, on every master of a cluster; SCAN
 * may return a key twice).
 */
export async function scanKeys(redis: Redis, pattern: string): Promise<string[]> {
  const found = new Set<string>();
  for await (const batch of scanEveryMaster(redis, pattern)) for (const key of batch) found.add(key);
  return [...found].sort();
}

/** Every key under `prefix`. */
export function keysUnder(redis: Redis, prefix: string): Promise<string[]> {
  return scanKeys(redis, `${escapeGlob(prefix)}*`);
}
