/**
 * Running a command class in this process (from the sources) instead of the built CLI: what it writes to
 * stdout / stderr (directly or through console.log / console.error) is captured, and the exit code is
 * taken from oclif's exit error or from process.exitCode. Also the usual setup of a file that runs
 * commands: a snapshot of the build, an oclif Config loaded from it, a raw client to the test Redis and,
 * if asked for, a scratch directory.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { format } from 'node:util';
import { Config } from '@oclif/core';
import type { Redis } from 'ioredis';
import { vi } from 'vitest';
import { snapshotBuild, type SnapshotBuild } from './cli.js';
import { rawClient, testRedisUrl } from './context.js';

/** A command class (oclif's static `run`). */
export interface RunnableCommand {
  run(argv: string[], config: Config): Promise<unknown>;
}

export interface InProcessRun<T = unknown> {
  /** What `run` returned; undefined when the command exited with an error. */
  result?: T;
  exit: number;
  stdout: string;
  stderr: string;
}

export interface InProcessOptions {
  /** Appended as `--prefix <prefix>` when given. */
  prefix?: string;
  /** Appended as `--redis-url <url>`: the test Redis unless given; null appends no --redis-url. */
  url?: string | null;
}

function text(chunk: string | Uint8Array): string {
  return typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8');
}

/**
 * Runs `command` with `argv` (then --prefix, then --redis-url, as `options` say) and `config`, capturing
 * its output. The exit code is oclif's for a command that exits with an error (any other error is
 * rethrown), otherwise process.exitCode (which is reset before and after) or 0.
 */
export async function runInProcess<T = unknown>(
  config: Config,
  command: RunnableCommand,
  argv: string[],
  options: InProcessOptions = {},
): Promise<InProcessRun<T>> {
  let stdout = '';
  let stderr = '';
  const capture = (to: 'out' | 'err') =>
    ((chunk: string | Uint8Array) => {
      if (to === 'out') stdout += text(chunk);
      else stderr += text(chunk);
      return true;
    }) as typeof process.stdout.write;
  const spies = [
    vi.spyOn(process.stdout, 'write').mockImplementation(capture('out')),
    vi.spyOn(process.stderr, 'write').mockImplementation(capture('err')),
    // oclif's this.log / JSON output go through console.log.
    vi.spyOn(console, 'log').mockImplementation((...a: unknown[]) => void (stdout += `${format(...a)}\n`)),
    vi.spyOn(console, 'error').mockImplementation((...a: unknown[]) => void (stderr += `${format(...a)}\n`)),
  ];
  const args = [...argv];
  if (options.prefix !== undefined) args.push('--prefix', options.prefix);
  if (options.url !== null) args.push('--redis-url', options.url ?? testRedisUrl());
  process.exitCode = undefined;
  try {
    const result = (await command.run(args, config)) as T;
    return { result, exit: Number(process.exitCode ?? 0), stdout, stderr };
  } catch (err) {
    const exit = (err as { oclif?: { exit?: number } }).oclif?.exit;
    if (exit === undefined) throw err;
    return { exit, stdout, stderr };
  } finally {
    process.exitCode = undefined;
    for (const spy of spies) spy.mockRestore();
  }
}

/** runInProcess with the Config `config()` returns when called (typically one loaded in beforeAll). */
export function inProcessRunner(config: () => Config) {
  return <T = unknown>(command: RunnableCommand, argv: string[], options?: InProcessOptions) =>
    runInProcess<T>(config(), command, argv, options);
}

/** A snapshot of the build, an oclif Config loaded from it, and a raw client to the test Redis. */
export interface TestBed {
  build: SnapshotBuild;
  config: Config;
  redis: Redis;
  /** A temporary directory, when openTestBed was asked for one. */
  scratch?: string;
}

/**
 * Opens a TestBed (for beforeAll); with `scratch`, also a temporary directory whose name starts with it.
 * Close it with closeTestBed.
 */
export async function openTestBed(): Promise<TestBed>;
export async function openTestBed(options: { scratch: string }): Promise<TestBed & { scratch: string }>;
export async function openTestBed(options: { scratch?: string } = {}): Promise<TestBed> {
  const build = await snapshotBuild();
  try {
    const config = await Config.load(build.root);
    const scratch = options.scratch === undefined ? undefined : mkdtempSync(join(tmpdir(), options.scratch));
    return { build, config, redis: rawClient(), scratch };
  } catch (err) {
    build.remove();
    throw err;
  }
}

/** Disconnects the client, removes the snapshot and the scratch directory; any may be missing. */
export function closeTestBed(bed: Partial<TestBed>): void {
  bed.redis?.disconnect();
  bed.build?.remove();
  if (bed.scratch) rmSync(bed.scratch, { recursive: true, force: true });
}
