/**
 * Where the time goes when a bananas worker drains a queue: Redis CPU and `INFO commandstats` per job,
 * the worker process's CPU per job, and the script calls per job. Not part of npm test.
 *
 *   npx tsx bench/profile.ts [jobs=50000] [concurrency=50]
 *   PROFILE_CPU=1 npx tsx bench/profile.ts   # also writes a V8 CPU profile of the worker (bench/results/*.cpuprofile)
 *   SKIP_BUILD=1 npx tsx bench/profile.ts    # runs dist/ as it is (comparing two checkouts' builds in turns)
 *   REDIS_CONFIG='zset-max-listpack-entries 0' npx tsx bench/profile.ts   # CONFIG SET on the server first
 *   WORKER_NODE_ARGS='--trace-gc' ECHO_CHILD=1 npx tsx bench/profile.ts   # node options for the worker; its output
 *   PERF_REDIS=1 npx tsx bench/profile.ts    # also samples redis-server with Linux perf during the drain and
 *                                            # prints its functions by inclusive share (commands, Lua, kernel)
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { Redis } from 'ioredis';
import { LocalRedisServer } from '../src/core/local-redis.js';
import { Queue } from '../src/core/queue.js';
import { seedNoopJobs } from './jobs.js';
import { commandStats, printMachine, redisCpuSeconds } from './machine.js';

const jobs = Number(process.argv[2] ?? 50_000);
const concurrency = Number(process.argv[3] ?? 50);

if (process.env.SKIP_BUILD !== '1')
  execFileSync(process.execPath, ['scripts/build.mjs'], { stdio: 'inherit' }); // the child runs dist/
const server = await LocalRedisServer.start();
const redis = new Redis(server.url);
// Server settings to try (comma-separated "name value" pairs), e.g. the encodings of small sorted sets.
for (const setting of (process.env.REDIS_CONFIG ?? '').split(',').filter((s) => s.trim() !== '')) {
  const [name, value] = setting.trim().split(/\s+/) as [string, string];
  await redis.config('SET', name, value);
}
const queue = new Queue(redis);
await seedNoopJobs(queue, jobs);

await redis.config('RESETSTAT');
async function netBytes(): Promise<{ input: number; output: number }> {
  const info = await redis.info('stats');
  return {
    input: Number(/total_net_input_bytes:(\d+)/.exec(info)?.[1]),
    output: Number(/total_net_output_bytes:(\d+)/.exec(info)?.[1]),
  };
}
const cpuBefore = await redisCpuSeconds(redis);
const netBefore = await netBytes();
mkdirSync('bench/results', { recursive: true });
const nodeArgs = [
  ...(process.env.PROFILE_CPU === '1' ? ['--cpu-prof', '--cpu-prof-dir=bench/results'] : []),
  ...(process.env.WORKER_NODE_ARGS ?? '').split(' ').filter((arg) => arg !== ''),
];
/** Linux perf sampling a process, and when it has exited (on its own, e.g. refused, or when stopped). */
interface Sampler {
  child: ChildProcess;
  exited: Promise<number | null>;
}

/**
 * Linux perf sampling redis-server with call graphs (DWARF: the server is built without frame pointers),
 * from about the go to the end of the drain. Undefined when perf is not installed.
 */
function startPerf(pid: number, file: string): Sampler | undefined {
  try {
    execFileSync('perf', ['--version'], { stdio: 'ignore' });
  } catch {
    console.error('PERF_REDIS=1: perf is not installed; skipped');
    return undefined;
  }
  const args = ['record', '-q', '-F', '999', '--call-graph', 'dwarf,16384', '-p', String(pid), '-o', file];
  const child = spawn('perf', args, { stdio: 'inherit' });
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code) => resolve(code));
    child.once('error', (err) => {
      console.error(`PERF_REDIS=1: perf did not start: ${err.message}`);
      resolve(null);
    });
  });
  return { child, exited };
}

/** Stops the sampler (SIGINT: perf writes its file) and waits for it; whether it was still sampling. */
async function stopPerf(sampler: Sampler): Promise<boolean> {
  const running = sampler.child.exitCode === null && sampler.child.signalCode === null;
  if (running) sampler.child.kill('SIGINT');
  await sampler.exited;
  return running;
}

/** The functions perf saw in redis-server, by inclusive share of the samples (named ones only). */
function perfSummary(file: string, top = 45): string[] {
  const report = execFileSync(
    'perf',
    ['report', '-i', file, '--children', '--sort', 'symbol', '-g', 'none', '--stdio'],
    { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, stdio: ['ignore', 'pipe', 'ignore'] },
  );
  const lines: string[] = [];
  for (const line of report.split('\n')) {
    const match = /^\s+([\d.]+)%\s+([\d.]+)%\s+\[[.k]\]\s+(\S+)/.exec(line);
    if (!match || match[3]!.startsWith('0x') || Number(match[1]) < 0.5) continue;
    lines.push(`${match[1]!.padStart(6)} % ${match[2]!.padStart(6)} %  ${match[3]}`);
    if (lines.length >= top) break;
  }
  return lines;
}

const perfFile = `bench/results/redis-${Date.now()}.perf.data`;
let perf: Sampler | undefined;

/** The worker child's report (bench/worker-child.ts). */
type ChildReport = { wall_ms: number; cpu_ms?: number; cpu_sys_ms?: number; rss_mib?: number; elu?: number };
const result = await new Promise<ChildReport>((resolve, reject) => {
  const child = spawn(
    process.execPath,
    [
      ...nodeArgs,
      '--import',
      'tsx',
      'bench/worker-child.ts',
      'bananas',
      server.url,
      String(concurrency),
      'drain',
      String(jobs),
    ],
    { stdio: ['pipe', 'pipe', 'inherit'] },
  );
  let out = '';
  child.stdout.on('data', (c: Buffer) => {
    if (process.env.ECHO_CHILD === '1') process.stderr.write(c); // e.g. what --trace-gc prints
    out += c.toString();
    if (out.includes('"ready"') && child.stdin.writable) {
      if (process.env.PERF_REDIS === '1' && server.pid) perf = startPerf(server.pid, perfFile);
      child.stdin.end('go\n');
    }
  });
  child.on('exit', (code) => {
    if (code !== 0) {
      if (perf) void stopPerf(perf);
      return reject(new Error(`worker child exited ${code}`));
    }
    const last = out.trim().split('\n').pop()!;
    resolve(JSON.parse(last) as ChildReport);
  });
});
// The sampler stops with the drain, before the reads below.
const perfRan = perf ? await stopPerf(perf) : false;
const cpuAfter = await redisCpuSeconds(redis);
const redisCpuMs = (cpuAfter.total - cpuBefore.total) * 1000;
const redisSysMs = (cpuAfter.system - cpuBefore.system) * 1000;
const netAfter = await netBytes();
const stats = await commandStats(redis);

printMachine();
console.log(
  `${jobs} no-op jobs, concurrency ${concurrency}: ${Math.round(jobs / (result.wall_ms / 1000))} jobs/s, ` +
    `wall ${result.wall_ms} ms, peak RSS ${result.rss_mib?.toFixed(0)} MiB, ` +
    `worker event loop busy ${result.elu === undefined ? '?' : (100 * result.elu).toFixed(0)} %`,
);
console.log(
  `Redis CPU ${((1000 * redisCpuMs) / jobs).toFixed(1)} µs/job (${((100 * redisCpuMs) / result.wall_ms).toFixed(0)} % of a core); ` +
    `worker CPU ${result.cpu_ms ? ((1000 * result.cpu_ms) / jobs).toFixed(1) : '?'} µs/job` +
    (result.cpu_ms ? ` (${((100 * result.cpu_ms) / result.wall_ms).toFixed(0)} % of a core)` : ''),
);
console.log(
  `of which in the kernel (system time): Redis ${((1000 * redisSysMs) / jobs).toFixed(1)} µs/job, ` +
    `worker ${result.cpu_sys_ms === undefined ? '?' : ((1000 * result.cpu_sys_ms) / jobs).toFixed(1)} µs/job`,
);
console.log(
  `bytes per job: to Redis ${((netAfter.input - netBefore.input) / jobs).toFixed(0)}, ` +
    `from Redis ${((netAfter.output - netBefore.output) / jobs).toFixed(0)}`,
);
console.log(
  `${'command'.padEnd(16)} ${'calls/job'.padStart(10)} ${'µs/job'.padStart(8)} ${'µs/call'.padStart(8)}`,
);
const sorted = [...stats.entries()].sort((a, b) => b[1].usec - a[1].usec);
for (const [name, s] of sorted) {
  if (s.calls / jobs < 0.001) continue;
  console.log(
    `${name.padEnd(16)} ${(s.calls / jobs).toFixed(3).padStart(10)} ${(s.usec / jobs).toFixed(2).padStart(8)} ${(s.usec / s.calls).toFixed(2).padStart(8)}`,
  );
}
if (perf) {
  if (perfRan) {
    console.log(`redis-server under perf (${perfFile}): inclusive % and own % of its samples`);
    for (const line of perfSummary(perfFile)) console.log(line);
  } else {
    console.log('PERF_REDIS=1: perf stopped before the drain ended (see its message above); no profile');
  }
}
redis.disconnect();
await server.destroy();
process.exit(0);
