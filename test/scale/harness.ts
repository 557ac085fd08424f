/**
 * What the failover scenarios share (cluster, sentinel): enqueueing the work and a results table printed
 * at the end of the file. Where every id stands is checked with the fault suite's placement helpers.
 */
import { expect } from 'vitest';
import type { RedisClient } from '../../src/core/connection.js';
import type { Keys } from '../../src/core/keys.js';
import type { Queue } from '../../src/core/queue.js';
import { printResultTable, tally, waitAllCompleted, type RunLog } from '../faults/harness.js';
import type { CliProcess } from '../helpers/cli.js';

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

export function printScaleResults(results: ScaleResult[]): void {
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
 * After a failover: waits until every job completed, records the scenario's row, and checks the invariant
 * (nothing lost, nothing left anywhere, every job ran, every worker process still running).
 */
export async function expectAllDoneAfterFailover(
  run: {
    scenario: string;
    redis: RedisClient;
    keys: Keys;
    ids: string[];
    runs: RunLog;
    workers: CliProcess[];
    killedAt: number;
    failoverMs: number;
  },
  results: ScaleResult[],
): Promise<void> {
  const state = await waitAllCompleted(run.redis, run.keys, run.ids, 120_000);
  const recoveryMs = Date.now() - run.killedAt;
  const { neverRan, duplicated } = tally(run.runs, run.ids);
  results.push({
    scenario: run.scenario,
    jobs: run.ids.length,
    lost: state.notCompleted.length,
    duplicated,
    misplaced: state.referenced.size,
    failover_ms: run.failoverMs,
    recovery_ms: recoveryMs,
  });
  for (const w of run.workers)
    expect(w.child.exitCode, `worker exited:\n${w.output().slice(-2000)}`).toBeNull();
  expect(state.notCompleted).toEqual([]);
  expect([...state.referenced]).toEqual([]);
  expect(neverRan).toBe(0);
}
