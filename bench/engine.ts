/**
 * Engine benchmark: bananas and BullMQ side by side on the same private redis-server (persistence off),
 * alternating, each scenario several times; medians and the bananas/BullMQ ratio. Not part of npm test.
 *
 *   npm run bench                 # full run
 *   BENCH_QUICK=1 npm run bench   # fewer jobs, for a smoke check
 *   BENCH_ONLY=process50,latency BENCH_REPS=5 npm run bench
 *
 * Scenarios: enqueue, bulk, process1, process50, process200, latency, idle, memory, fleet (1, 2 and 4
 * worker processes on one Redis), and operator (bananas only, once: bench/dlq-requeue.ts and
 * bench/scan-corrupt.ts over 1,000,000 jobs, each on a redis-server of its own). Worker processes run the
 * built engine (built here first). The output ends with the targets this run measured, met or not.
 *
 * BullMQ runs with its defaults; the only settings given are the ones both engines need to do the same
 * work (connection, concurrency, the job priority for the high-priority latency test).
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { Queue as BullQueue } from 'bullmq';
import { Redis } from 'ioredis';
import { LocalRedisServer } from '../src/core/local-redis.js';
import { Queue } from '../src/core/queue.js';
import {
  machineInfo,
  median,
  mibToMb,
  percentile,
  preciseNowMs,
  printMachine,
  redisCpuSeconds,
} from './machine.js';

type Engine = 'bananas' | 'bullmq';
const ENGINES: Engine[] = ['bananas', 'bullmq'];
const QUICK = process.env.BENCH_QUICK === '1';
const REPS = Number(process.env.BENCH_REPS ?? 3);
const N_ENQUEUE = QUICK ? 5_000 : 20_000;
const N_BULK = QUICK ? 20_000 : 100_000;
const N_PROCESS = QUICK ? 20_000 : 100_000;
const N_PROCESS_C1 = QUICK ? 5_000 : 20_000;
const PAYLOAD_1KB = { data: 'x'.repeat(1000) };

// The worker children run the built engine (dist/): build it from the current sources first.
execFileSync(process.execPath, ['scripts/build.mjs'], { stdio: 'inherit' });

const server = await LocalRedisServer.start();
const url = server.url;
const redis = new Redis(url);
const bullConnection = { host: '127.0.0.1', port: server.port };

interface Row {
  scenario: string;
  unit: string;
  bananas: number[];
  bullmq: number[];
  /** true when higher is better */
  higherIsBetter: boolean;
}
const rows: Row[] = [];
function record(scenario: string, unit: string, engine: Engine, value: number, higherIsBetter = true): void {
  let row = rows.find((r) => r.scenario === scenario);
  if (!row) {
    row = { scenario, unit, bananas: [], bullmq: [], higherIsBetter };
    rows.push(row);
  }
  row[engine].push(value);
  console.error(`  ${scenario} [${engine}]: ${value.toFixed(1)} ${unit}`);
}

async function fresh(): Promise<void> {
  await redis.flushall();
}

async function pool<T>(items: T[], inFlight: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (next < items.length) await fn(items[next++] as T);
    }),
  );
}

async function enqueueOneByOne(engine: Engine): Promise<void> {
  await fresh();
  const items = Array.from({ length: N_ENQUEUE }, (_, i) => i);
  const start = performance.now();
  if (engine === 'bananas') {
    const queue = new Queue(redis);
    await pool(items, 64, () => queue.enqueue('noop', PAYLOAD_1KB));
  } else {
    const queue = new BullQueue('bench', { connection: bullConnection });
    await pool(items, 64, () => queue.add('noop', PAYLOAD_1KB));
    await queue.close();
  }
  record(
    'enqueue, 1 at a time, 64 in flight, 1 KB',
    'jobs/s',
    engine,
    N_ENQUEUE / ((performance.now() - start) / 1000),
  );
}

async function bulkEnqueue(engine: Engine, n: number, payload: unknown = PAYLOAD_1KB): Promise<number> {
  const chunk = 1000;
  const start = performance.now();
  if (engine === 'bananas') {
    const queue = new Queue(redis);
    for (let i = 0; i < n; i += chunk) {
      await queue.enqueueBatch(
        Array.from({ length: Math.min(chunk, n - i) }, () => ({ name: 'noop', payload })),
      );
    }
  } else {
    const queue = new BullQueue('bench', { connection: bullConnection });
    for (let i = 0; i < n; i += chunk) {
      await queue.addBulk(
        Array.from({ length: Math.min(chunk, n - i) }, () => ({ name: 'noop', data: payload })),
      );
    }
    await queue.close();
  }
  return performance.now() - start;
}

interface ChildResult {
  wall_ms: number;
  /** CPU time of the worker process from its first job to its last. */
  cpu_ms?: number;
  /** Unix ms of this process's first job, and of the moment every job of the run had completed. */
  first_start_at: number;
  done_at: number;
  delays: number[];
  rss_mib?: number;
  /** V8's young generation (both semi-spaces) when the drain ended. */
  young_generation_mib?: number;
}

/** CPU time Redis has used so far (user + system), in ms. */
async function redisCpuMs(): Promise<number> {
  return (await redisCpuSeconds(redis)).total * 1000;
}

/**
 * Runs worker children: `args` holds one argument list per child. A drain child loads, says it is ready,
 * and starts its worker on "go", sent to every child once all are ready (so process start-up is not timed
 * and a fleet starts together); a latency child starts at once and `onReady` runs when it is ready.
 */
async function runChildren(args: string[][], onReady?: () => Promise<void>): Promise<ChildResult[]> {
  const children = args.map((a) => startChild(a, onReady));
  await Promise.all(children.map((c) => c.ready));
  for (const c of children) c.go();
  return Promise.all(children.map((c) => c.result));
}

async function runChild(args: string[], onReady?: () => Promise<void>): Promise<ChildResult> {
  const [result] = await runChildren([args], onReady);
  return result!;
}

function startChild(
  args: string[],
  onReady?: () => Promise<void>,
): { ready: Promise<void>; go: () => void; result: Promise<ChildResult> } {
  const child = spawn(process.execPath, ['--import', 'tsx', 'bench/worker-child.ts', ...args], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  let readyResolve: () => void = () => undefined;
  const ready = new Promise<void>((resolve) => (readyResolve = resolve));
  const result = new Promise<ChildResult>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const lines = out.split('\n');
      out = lines.pop() ?? '';
      for (const line of lines) {
        const msg = JSON.parse(line) as { ready?: boolean; wall_ms?: number };
        if (msg.ready) {
          readyResolve();
          void onReady?.().catch(reject);
        } else resolve(msg as ChildResult);
      }
    });
    child.on('exit', (code) => code !== 0 && reject(new Error(`worker child exited ${code}`)));
  });
  return { ready, go: () => child.stdin.end('go\n'), result };
}

async function processQueued(engine: Engine, concurrency: number): Promise<void> {
  await fresh();
  const n = concurrency === 1 ? N_PROCESS_C1 : N_PROCESS;
  await bulkEnqueue(engine, n, {});
  const cpuBefore = await redisCpuMs();
  const result = await runChild([engine, url, String(concurrency), 'drain', String(n)]);
  const redisMs = (await redisCpuMs()) - cpuBefore;
  const label = `process ${n.toLocaleString('en-US')} no-op jobs, concurrency ${concurrency}`;
  record(label, 'jobs/s', engine, n / (result.wall_ms / 1000));
  // CPU per job is what a busy machine distorts least: Redis and the worker process, separately.
  record(`${label}: Redis CPU per job`, 'µs', engine, (1000 * redisMs) / n, false);
  if (result.cpu_ms !== undefined)
    record(`${label}: worker CPU per job`, 'µs', engine, (1000 * result.cpu_ms) / n, false);
  if (concurrency === 200 && result.rss_mib)
    record('worker peak RSS, concurrency 200', 'MiB', engine, result.rss_mib, false);
  if (concurrency === 200 && result.young_generation_mib)
    record('… its V8 young generation', 'MiB', engine, result.young_generation_mib, false);
}

const FLEET = [1, 2, 4];
const fleetLabel = (processes: number) =>
  `fleet: ${processes} worker process${processes > 1 ? 'es' : ''} × concurrency 50`;

/** The same drain with 1, 2 and 4 worker processes (concurrency 50 each) on one Redis. */
async function fleet(engine: Engine): Promise<void> {
  for (const processes of FLEET) {
    await fresh();
    await bulkEnqueue(engine, N_PROCESS, {});
    const results = await runChildren(
      Array.from({ length: processes }, () => [engine, url, '50', 'drain', String(N_PROCESS)]),
    );
    // A process that got no job reports first_start_at 0: the run starts at the earliest real start.
    const start = Math.min(...results.map((r) => r.first_start_at).filter((t) => t > 0));
    const end = Math.max(...results.map((r) => r.done_at));
    record(fleetLabel(processes), 'jobs/s', engine, N_PROCESS / ((end - start) / 1000));
  }
}

async function steadyLatency(engine: Engine): Promise<void> {
  await fresh();
  const rate = 2000;
  const seconds = QUICK ? 2 : 5;
  const total = rate * seconds;
  const result = await runChild([engine, url, '50', 'latency', String(total)], async () => {
    const queue = engine === 'bananas' ? new Queue(redis) : undefined;
    const bull = engine === 'bullmq' ? new BullQueue('bench', { connection: bullConnection }) : undefined;
    const start = performance.now();
    let sent = 0;
    while (sent < total) {
      const due = Math.floor(((performance.now() - start) / 1000) * rate);
      const batch: Array<Promise<unknown>> = [];
      while (sent < Math.min(due, total)) {
        const payload = { t: preciseNowMs() };
        batch.push(queue ? queue.enqueue('noop', payload) : bull!.add('noop', payload));
        sent++;
      }
      await Promise.all(batch);
      await new Promise((r) => setTimeout(r, 1));
    }
    await bull?.close();
  });
  record('steady 2,000 jobs/s: enqueue→start p50', 'ms', engine, percentile(result.delays, 50), false);
  record('steady 2,000 jobs/s: enqueue→start p99', 'ms', engine, percentile(result.delays, 99), false);
  record('steady 2,000 jobs/s: enqueue→start max', 'ms', engine, Math.max(...result.delays), false);
}

async function idleHighArrival(engine: Engine): Promise<void> {
  await fresh();
  const samples = QUICK ? 50 : 200;
  const result = await runChild([engine, url, '10', 'latency', String(samples)], async () => {
    const queue = engine === 'bananas' ? new Queue(redis) : undefined;
    const bull = engine === 'bullmq' ? new BullQueue('bench', { connection: bullConnection }) : undefined;
    await new Promise((r) => setTimeout(r, 300));
    for (let i = 0; i < samples; i++) {
      const payload = { t: preciseNowMs() };
      if (queue) await queue.enqueue('noop', payload, { priority: 'high' });
      else await bull!.add('noop', payload, { priority: 1 });
      await new Promise((r) => setTimeout(r, 20));
    }
    await bull?.close();
  });
  record('idle worker, high job arrives: start p50', 'ms', engine, percentile(result.delays, 50), false);
  record('idle worker, high job arrives: start p99', 'ms', engine, percentile(result.delays, 99), false);
}

async function memoryPerJob(engine: Engine): Promise<void> {
  await fresh();
  const used = async () => Number(/used_memory:(\d+)/.exec(await redis.info('memory'))?.[1]);
  const before = await used();
  await bulkEnqueue(engine, N_BULK);
  const after = await used();
  record('Redis memory per pending job, 1 KB payload', 'bytes', engine, (after - before) / N_BULK, false);
}

async function bulk(engine: Engine): Promise<void> {
  await fresh();
  const ms = await bulkEnqueue(engine, N_BULK);
  record(
    `bulk enqueue ${N_BULK.toLocaleString('en-US')} (batches of 1,000), 1 KB`,
    'jobs/s',
    engine,
    N_BULK / (ms / 1000),
  );
}

const info = machineInfo();
printMachine(info);
console.log(
  `BullMQ: defaults; bananas: defaults (its worker process caps V8's young generation at 16 MiB, as \`bananas worker start\` does). Redis: private redis-server, persistence off. ${REPS} runs each, alternating.`,
);
/** One operator-scale benchmark's figures, from the JSON line its script prints last. */
interface OperatorRun {
  label: string;
  /** Undefined when the script gave no figures (see `failure`). */
  wallSeconds?: number;
  /** Peak RSS of the CLI; 0 where /proc could not be read. */
  peakMib: number;
  peakMb: number;
  /** The script's own checks passed (it exited 0): every job moved once / every seeded problem found. */
  correct: boolean;
  targetSeconds: number;
  targetMb: number;
  /** Why the script gave no figures (it failed or ran out of time). */
  failure?: string;
}

/**
 * Operator scale, bananas only (BullMQ has no such commands): `dlq requeue --all` and `scan corrupt`
 * run once each by their own scripts (1,000,000 jobs; 100,000 with BENCH_QUICK), as the CLI runs in
 * production: a child process against a redis-server of its own, seeded first. A script that fails or
 * runs out of time is reported as such; the rest of the run goes on.
 */
/** The CLI's peak RSS target of both operator benchmarks, in MB (docs/performance.md › Targets). */
const OPERATOR_RSS_MB = 200;

function operatorScale(): OperatorRun[] {
  const jobs = QUICK ? 100_000 : 1_000_000;
  const count = jobs.toLocaleString('en-US');
  const runs = [
    {
      label: `dlq requeue --all over ${count} dead jobs`,
      args: ['bench/dlq-requeue.ts', '--jobs', String(jobs)],
      correct: 'all_moved_once',
      targetSeconds: 20,
    },
    {
      label: `scan corrupt over ${count} documents`,
      args: ['bench/scan-corrupt.ts'],
      correct: 'all_seeded_problems_found',
      targetSeconds: 30,
    },
  ];
  return runs.map(({ label, args, correct, targetSeconds }) => {
    console.error(`  ${label} ...`);
    const child = spawnSync(process.execPath, ['--import', 'tsx', ...args], {
      env: { ...process.env, BENCH_DOCS: String(jobs) },
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'inherit'],
      maxBuffer: 64 * 2 ** 20,
      timeout: 15 * 60_000,
      killSignal: 'SIGINT', // the script then stops its redis-server
    });
    const line = (child.stdout ?? '').split('\n').find((l) => l.startsWith('{"benchmark"'));
    if (!line) {
      const failure = child.error
        ? `${child.error.message}`
        : `exited ${child.status ?? child.signal} without its figures`;
      console.error(`  ${label}: ${failure}\n${(child.stdout ?? '').slice(-2000)}`);
      return {
        label,
        peakMib: 0,
        peakMb: 0,
        correct: false,
        targetSeconds,
        targetMb: OPERATOR_RSS_MB,
        failure,
      };
    }
    const figures = JSON.parse(line) as Record<string, unknown> & {
      wall_seconds: number;
      peak_rss_mib: number;
      peak_rss_mb: number;
    };
    const run: OperatorRun = {
      label,
      wallSeconds: figures.wall_seconds,
      peakMib: figures.peak_rss_mib,
      peakMb: figures.peak_rss_mb,
      correct: figures[correct] === true && child.status === 0,
      targetSeconds,
      targetMb: OPERATOR_RSS_MB,
    };
    console.error(
      `  ${label}: ${run.wallSeconds} s, peak RSS ${run.peakMib} MiB${run.correct ? '' : ', CHECK FAILED'}`,
    );
    return run;
  });
}

const allScenarios: Record<string, (engine: Engine) => Promise<void>> = {
  enqueue: enqueueOneByOne,
  bulk,
  process1: (e) => processQueued(e, 1),
  process50: (e) => processQueued(e, 50),
  process200: (e) => processQueued(e, 200),
  latency: steadyLatency,
  idle: idleHighArrival,
  memory: memoryPerJob,
  fleet,
};
// BENCH_ONLY=process50,latency runs a subset.
const only = process.env.BENCH_ONLY?.split(',');
const scenarios = Object.entries(allScenarios)
  .filter(([name]) => !only || only.includes(name))
  .map(([, run]) => run);
for (const scenario of scenarios) {
  for (let rep = 0; rep < REPS; rep++) {
    const order = rep % 2 === 0 ? ENGINES : [...ENGINES].reverse();
    for (const engine of order) await scenario(engine);
  }
}
const operator = !only || only.includes('operator') ? operatorScale() : [];

console.log('');
console.log(`${'scenario'.padEnd(56)} ${'bananas'.padStart(12)} ${'BullMQ'.padStart(12)}  ratio`);
const summary = rows.map((row) => {
  const b = median(row.bananas);
  const q = median(row.bullmq);
  const ratio = row.higherIsBetter ? b / q : q / b;
  console.log(
    `${row.scenario.padEnd(56)} ${b.toFixed(1).padStart(12)} ${q.toFixed(1).padStart(12)}  ${ratio.toFixed(2)}x  (${row.unit}${row.higherIsBetter ? '' : ', lower is better'})`,
  );
  return {
    scenario: row.scenario,
    unit: row.unit,
    bananas_median: b,
    bullmq_median: q,
    advantage: ratio,
    runs: { bananas: row.bananas, bullmq: row.bullmq },
  };
});
const fleetRows = FLEET.map((p) => rows.find((r) => r.scenario === fleetLabel(p)));
let fleetTable: Array<Record<string, number>> | undefined;
if (fleetRows.every((r) => r !== undefined)) {
  const base = { bananas: median(fleetRows[0]!.bananas), bullmq: median(fleetRows[0]!.bullmq) };
  console.log(
    `\nfleet on one Redis (${N_PROCESS.toLocaleString('en-US')} jobs, concurrency 50 per process; medians)`,
  );
  console.log('processes   bananas jobs/s  speed-up    BullMQ jobs/s  speed-up');
  fleetTable = FLEET.map((processes, i) => {
    const b = median(fleetRows[i]!.bananas);
    const q = median(fleetRows[i]!.bullmq);
    console.log(
      `${String(processes).padStart(9)} ${b.toFixed(0).padStart(16)} ${(b / base.bananas).toFixed(2).padStart(8)}x ${q.toFixed(0).padStart(16)} ${(q / base.bullmq).toFixed(2).padStart(8)}x`,
    );
    return {
      processes,
      bananas: b,
      bananas_speedup: b / base.bananas,
      bullmq: q,
      bullmq_speedup: q / base.bullmq,
    };
  });
}
if (operator.length > 0) {
  console.log(
    '\noperator scale (the bananas CLI as a child process, once each; BullMQ has no such commands)',
  );
  for (const run of operator) {
    const figures =
      run.wallSeconds === undefined
        ? `no figures: ${run.failure}`
        : `${run.wallSeconds.toFixed(1).padStart(6)} s  peak RSS ${run.peakMb > 0 ? `${run.peakMib.toFixed(0).padStart(4)} MiB = ${run.peakMb.toFixed(0)} MB` : 'not measured'}  ${run.correct ? 'result checked' : 'RESULT CHECK FAILED'}`;
    console.log(`${run.label.padEnd(48)} ${figures}`);
  }
}

// The targets of docs/performance.md, judged on this run's medians (a quick run's sizes are too small to judge).
interface Target {
  target: string;
  measured: string;
  met: boolean;
}
const targets: Target[] = [];
const medianOf = (scenario: string, engine: Engine): number | undefined => {
  const row = rows.find((r) => r.scenario === scenario);
  return row && row[engine].length > 0 ? median(row[engine]) : undefined;
};
const ratioTarget = (target: string, scenario: string, want: number): void => {
  const b = medianOf(scenario, 'bananas');
  const q = medianOf(scenario, 'bullmq');
  if (b === undefined || q === undefined) return;
  targets.push({ target, measured: `${(b / q).toFixed(2)}×`, met: b / q >= want });
};
const atMost = (
  target: string,
  scenario: string,
  limit: number,
  unit: string,
  toUnit = (v: number) => v,
): void => {
  const b = medianOf(scenario, 'bananas');
  if (b === undefined) return;
  targets.push({ target, measured: `${toUnit(b).toFixed(1)} ${unit}`, met: toUnit(b) <= limit });
};
ratioTarget(
  'processing at concurrency 50: ≥ 3× BullMQ',
  `process ${N_PROCESS.toLocaleString('en-US')} no-op jobs, concurrency 50`,
  3,
);
ratioTarget(
  'bulk enqueue: ≥ 3× addBulk',
  `bulk enqueue ${N_BULK.toLocaleString('en-US')} (batches of 1,000), 1 KB`,
  3,
);
atMost(
  'idle worker, high job arrives: start p99 ≤ 5 ms',
  'idle worker, high job arrives: start p99',
  5,
  'ms',
);
atMost('steady 2,000 jobs/s: start p99 ≤ 10 ms', 'steady 2,000 jobs/s: enqueue→start p99', 10, 'ms');
atMost('worker RSS at concurrency 200 ≤ 150 MB', 'worker peak RSS, concurrency 200', 150, 'MB', mibToMb);
for (const run of operator) {
  const measuredRss = run.peakMb > 0 ? `${run.peakMb.toFixed(0)} MB` : 'RSS n/a';
  targets.push({
    target: `${run.label}: ≤ ${run.targetSeconds} s, CLI RSS ≤ ${run.targetMb} MB`,
    measured: run.wallSeconds === undefined ? 'failed' : `${run.wallSeconds.toFixed(1)} s, ${measuredRss}`,
    met:
      run.wallSeconds !== undefined &&
      run.correct &&
      run.wallSeconds <= run.targetSeconds &&
      run.peakMb > 0 &&
      run.peakMb <= run.targetMb,
  });
}
if (targets.length > 0 && !QUICK) {
  console.log('\ntargets (medians of this run)');
  for (const t of targets) {
    console.log(`${t.target.padEnd(76)} ${t.measured.padStart(16)}  ${t.met ? 'met' : 'NOT MET'}`);
  }
}

mkdirSync('bench/results', { recursive: true });
const file = `bench/results/engine-${new Date().toISOString().replace(/[:.]/g, '-')}.json`;
const operatorJson = operator.map((run) => ({
  benchmark: run.label,
  wall_seconds: run.wallSeconds,
  peak_rss_mib: run.peakMib,
  peak_rss_mb: run.peakMb,
  result_checked: run.correct,
  failure: run.failure,
}));
writeFileSync(
  file,
  `${JSON.stringify(
    {
      machine: info,
      quick: QUICK,
      reps: REPS,
      summary,
      fleet: fleetTable,
      operator: operatorJson,
      targets: QUICK ? undefined : targets,
    },
    null,
    2,
  )}\n`,
);
console.log(`\nresults: ${file} (advantage = how many times better bananas is; < 1 means worse)`);
redis.disconnect();
await server.destroy();
process.exit(0);
