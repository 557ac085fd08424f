/**
 * The fault-injection harness: real worker processes (the built CLI) against a private redis-server,
 * a record of every handler run (files, independent of Redis), and the invariant check: every
 * acknowledged job completed, duplicates counted, every id in exactly one place.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeJob } from '../../src/core/codec.js';
import type { RedisClient } from '../../src/core/connection.js';
import { Keys } from '../../src/core/keys.js';
import { pageList } from '../../src/core/iterate.js';
import { cleanEnv, startCli, type CliProcess } from '../helpers/cli.js';

export interface FaultResult {
  scenario: string;
  jobs: number;
  lost: number;
  duplicated: number;
  misplaced: number;
  recovery_ms?: number;
  notes?: string;
}

const results: FaultResult[] = [];

export function report(result: FaultResult): void {
  results.push(result);
}

export function printResults(): void {
  if (results.length === 0) return;
  const header = ['scenario', 'jobs', 'lost', 'duplicated', 'misplaced', 'recovery'];
  const rows = results.map((r) => [
    r.scenario,
    String(r.jobs),
    String(r.lost),
    String(r.duplicated),
    String(r.misplaced),
    r.recovery_ms === undefined ? '-' : `${(r.recovery_ms / 1000).toFixed(1)} s`,
  ]);
  const notes = results.filter((r) => r.notes).map((r) => `${r.scenario}: ${r.notes}`);
  printResultTable('Fault-injection results', header, rows, notes);
}

/** Prints a titled table (first column left-aligned, the others right-aligned), then `notes`. */
export function printResultTable(title: string, header: string[], rows: string[][], notes: string[]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  console.log(['', title, line(header), ...rows.map(line), ...notes, ''].join('\n'));
}

export class RunLog {
  readonly dir = mkdtempSync(join(tmpdir(), 'bananas-faults-'));

  /** Handler runs per job id, over every worker process. */
  counts(): Map<string, number> {
    const counts = new Map<string, number>();
    for (const file of readdirSync(this.dir)) {
      for (const id of readFileSync(join(this.dir, file), 'utf8').split('\n')) {
        if (id) counts.set(id, (counts.get(id) ?? 0) + 1);
      }
    }
    return counts;
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export function startWorker(bin: string, redisUrl: string, runs: RunLog, args: string[] = []): CliProcess {
  return startCli(
    bin,
    [
      'worker',
      'start',
      '--handlers',
      'test/fixtures/handlers/faults.mjs',
      '--log-format',
      'json',
      ...(args.includes('--log-level') ? [] : ['--log-level', 'warn']),
      ...args,
    ],
    { env: cleanEnv({ REDIS_URL: redisUrl, FAULTS_RUNS_DIR: runs.dir }), timeoutMs: 600_000 },
  );
}

export interface Placement {
  /** Ids whose document is not `completed`. */
  notCompleted: string[];
  /** Ids referenced from any list or the scheduled set (a completed job should be referenced nowhere). */
  referenced: Map<string, string[]>;
}

/** Where every id stands: document status, and every list/set still referencing it. */
export async function placement(redis: RedisClient, keys: Keys, ids: string[]): Promise<Placement> {
  const notCompleted: string[] = [];
  for (let i = 0; i < ids.length; i += 1000) {
    const batch = ids.slice(i, i + 1000);
    const docs = await redis.mget(batch.map((id) => keys.job(id)));
    docs.forEach((doc, j) => {
      const decoded = doc === null ? undefined : decodeJob(doc);
      if (!decoded?.ok || decoded.job.status !== 'completed') notCompleted.push(batch[j]!);
    });
  }
  const referenced = new Map<string, string[]>();
  const lists = [
    ...keys.queuesServed('high', 'default'),
    ...keys.queuesServed('normal', 'default'),
    ...keys.queuesServed('low', 'default'),
    keys.processing,
    keys.dead,
  ];
  for (const list of lists) {
    for await (const page of pageList(redis, list)) {
      for (const id of page) referenced.set(id, [...(referenced.get(id) ?? []), list]);
    }
  }
  for (const id of await redis.zrange(keys.scheduled, 0, -1)) {
    referenced.set(id, [...(referenced.get(id) ?? []), keys.scheduled]);
  }
  return { notCompleted, referenced };
}

/**
 * Polls until every id's document is completed and nothing references it, or the time runs out. A failed
 * look (Redis restarting, a failover in progress) counts as "not yet".
 */
export async function waitAllCompleted(
  redis: RedisClient,
  keys: Keys,
  ids: string[],
  timeoutMs: number,
): Promise<Placement> {
  const deadline = Date.now() + timeoutMs;
  let last: Placement | undefined;
  for (;;) {
    try {
      last = await placement(redis, keys, ids);
      if (last.notCompleted.length === 0 && last.referenced.size === 0) return last;
    } catch {
      // Ask again.
    }
    if (Date.now() > deadline) return last ?? { notCompleted: [...ids], referenced: new Map() };
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** Sums duplicate runs (runs beyond the first) over `ids`, and counts ids that never ran. */
export function tally(runs: RunLog, ids: string[]): { neverRan: number; duplicated: number } {
  const counts = runs.counts();
  let neverRan = 0;
  let duplicated = 0;
  for (const id of ids) {
    const n = counts.get(id) ?? 0;
    if (n === 0) neverRan++;
    else duplicated += n - 1;
  }
  return { neverRan, duplicated };
}
