/**
 * What the failover scenarios share (cluster, sentinel): enqueueing the work, the worker processes and
 * their checks, and a results table printed at the end of the file. Where every id stands is checked with
 * the fault suite's placement helpers.
 */
import { expect } from 'vitest';
import { connectOrThrow, createRedis, type RedisClient } from '../../src/core/connection.js';
import type { Keys } from '../../src/core/keys.js';
import type { Queue } from '../../src/core/queue.js';
import { printResultTable, RunLog, startWorker, tally, waitAllCompleted } from '../faults/harness.js';
import type { CliProcess, SnapshotBuild } from '../helpers/cli.js';
import { recordPid } from './servers.js';

export async function enqueueWork(
  queue: Queue,
  n: number,
  payload = { min_ms: 1, max_ms: 20 },
): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i += 500) {
    const { enqueued } = await queue.enqueueBatch(
      Array.from({ length: Math.min(500, n - i) }, () => ({ name: 'work', payload })),
    );
    ids.push(...enqueued.map((j) => j.id));
  }
  return ids;
}

export interface ScaleResult {
  scenario: string;
  jobs: number;
  lost: number;
  duplicated: number;
  misplaced: number;
  failover_ms: number;
  recovery_ms: number;
  notes?: string;
}

function printScaleResults(results: ScaleResult[]): void {
  if (results.length === 0) return;
  const header = ['scenario', 'jobs', 'lost', 'duplicated', 'misplaced', 'failover', 'all done after kill'];
  const rows = results.map((r) => [
    r.scenario,
    String(r.jobs),
    String(r.lost),
    String(r.duplicated),
    String(r.misplaced),
    `${(r.failover_ms / 1000).toFixed(1)} s`,
    `${(r.recovery_ms / 1000).toFixed(1)} s`,
  ]);
  const notes = results.filter((r) => r.notes).map((r) => `  ${r.scenario}: ${r.notes}`);
  printResultTable('Scale failover results', header, rows, notes);
}

/**
 * A failover scenario's moving parts: a resilient client on the deployment, the worker processes (the built
 * CLI) and their run log, and the results table, printed by {@link close}.
 */
export class FailoverRig {
  readonly runs = new RunLog();
  readonly workers: CliProcess[] = [];
  private readonly results: ScaleResult[] = [];

  private constructor(
    private readonly url: string,
    private readonly build: SnapshotBuild,
    readonly redis: RedisClient,
  ) {}

  static async open(url: string, build: SnapshotBuild): Promise<FailoverRig> {
    const redis = createRedis({ url, mode: 'resilient' });
    await connectOrThrow(redis, url);
    return new FailoverRig(url, build, redis);
  }

  /** Starts a worker process with `args` (its pid noted for the scale setup's clean-up). */
  startWorker(args: string[]): CliProcess {
    const worker = startWorker(this.build.bin, this.url, this.runs, args);
    recordPid(worker.child.pid);
    this.workers.push(worker);
    return worker;
  }

  /**
   * After a failover: waits until every job completed, records the scenario's row, and checks the
   * invariant (nothing lost, nothing left anywhere, every job ran, every worker process still running).
   */
  async expectAllDone(run: {
    scenario: string;
    keys: Keys;
    ids: string[];
    killedAt: number;
    failoverMs: number;
  }): Promise<void> {
    const state = await waitAllCompleted(this.redis, run.keys, run.ids, 120_000);
    const recoveryMs = Date.now() - run.killedAt;
    const { neverRan, duplicated } = tally(this.runs, run.ids);
    this.results.push({
      scenario: run.scenario,
      jobs: run.ids.length,
      lost: state.notCompleted.length,
      duplicated,
      misplaced: state.referenced.size,
      failover_ms: run.failoverMs,
      recovery_ms: recoveryMs,
    });
    for (const w of this.workers)
      expect(w.child.exitCode, `worker exited:\n${w.output().slice(-2000)}`).toBeNull();
    expect(state.notCompleted).toEqual([]);
    expect([...state.referenced]).toEqual([]);
    expect(neverRan).toBe(0);
  }

  /** SIGTERMs the workers: each exits 0, at once (nothing may hang on a connection the failover killed). */
  async expectWorkersStop(): Promise<void> {
    for (const w of this.workers) w.child.kill('SIGTERM');
    const stopping = Date.now();
    const exits = await Promise.all(this.workers.map((w) => w.done));
    expect(exits.map((e) => e.code)).toEqual(this.workers.map(() => 0));
    expect(Date.now() - stopping).toBeLessThan(10_000);
  }

  /** Kills what still runs, disconnects, removes the run log and prints the results. */
  async close(): Promise<void> {
    for (const w of this.workers) if (w.child.exitCode === null) w.child.kill('SIGKILL');
    await Promise.all(this.workers.map((w) => w.done.catch(() => undefined)));
    this.redis.disconnect();
    this.runs.remove();
    printScaleResults(this.results);
  }
}
