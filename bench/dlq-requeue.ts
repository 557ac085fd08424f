/**
 * Benchmark: `bananas dlq requeue --all` over 1,000,000 dead jobs.
 *
 *   npm run build && npx tsx bench/dlq-requeue.ts [--jobs 1000000]
 *   CLI_NODE_ARGS='--cpu-prof --cpu-prof-dir=bench/results' npx tsx bench/dlq-requeue.ts   # profile the CLI
 *
 * Starts a private redis-server, seeds the dead-letter queue (about 300-byte documents with the 7-day TTL
 * a dead job has), runs the built CLI as a child process, and reports its wall time and peak RSS (VmHWM
 * polled from /proc), checks that every job moved exactly once, and prints the machine. Targets: ≤ 20 s,
 * ≤ 200 MB. Not part of `npm test`.
 */
import { existsSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { Keys } from '../src/core/keys.js';
import { LocalRedisServer } from '../src/core/local-redis.js';
import { cpuModel, mibToMb, printFiguresLine, redisCpuSeconds, runMeasured } from './machine.js';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const PREFIX = 'bench:';
const keys = new Keys(PREFIX);
const jobsArg = process.argv.indexOf('--jobs');
const JOBS = jobsArg > 0 ? Number(process.argv[jobsArg + 1]) : 1_000_000;
const CHUNK = 10_000;
const TARGET_SECONDS = 20;
const TARGET_MB = 200;
const SAMPLE_ID = idOf(7);

function idOf(i: number): string {
  return `00000000-0000-4000-8000-${i.toString(16).padStart(12, '0')}`;
}

/** A dead job as the Go service leaves it: status failed, attempts exhausted, about 300 bytes. */
function document(i: number, id: string): string {
  const failedAt = new Date(Date.UTC(2025, 10, 10, 4, 0, 0) + i).toISOString();
  return JSON.stringify({
    id,
    name: i % 3 === 0 ? 'charge_card' : 'send_email',
    payload: { order_id: 100000 + i, to: `u${i}@example.com` },
    status: 'failed',
    priority: (['high', 'normal', 'low'] as const)[i % 3],
    created_at: failedAt,
    updated_at: failedAt,
    attempts: 3,
    max_retries: 3,
    error: `upstream #${i % 17}: context deadline exceeded`,
    routing_key: i % 10 === 0 ? 'gpu' : 'default',
  });
}

async function seed(redis: Redis): Promise<number> {
  let bytes = 0;
  for (let start = 0; start < JOBS; start += CHUNK) {
    const pipeline = redis.pipeline();
    const ids: string[] = [];
    for (let i = start; i < Math.min(start + CHUNK, JOBS); i++) {
      const id = idOf(i);
      const doc = document(i, id);
      bytes += doc.length;
      pipeline.set(keys.job(id), doc, 'EX', 7 * 24 * 3600);
      ids.push(id);
    }
    pipeline.lpush(keys.dead, ...ids);
    await pipeline.exec();
  }
  return bytes / JOBS;
}

async function main(): Promise<void> {
  if (!existsSync(`${ROOT}dist/commands/dlq/requeue.js`)) {
    throw new Error('dist/ has no dlq commands: run `npm run build` first');
  }
  const server = await LocalRedisServer.start();
  // Stopped from outside (npm run bench gives up on a run with SIGINT): the server goes too.
  process.once('SIGINT', () => void server.destroy().finally(() => process.exit(130)));
  const redis = new Redis(server.url);
  try {
    const redisVersion = /redis_version:(\S+)/.exec(await redis.info('server'))?.[1] ?? 'unknown';
    const seedStart = Date.now();
    const averageBytes = await seed(redis);
    const seeded = await redis.llen(keys.dead);
    console.log(
      `seeded ${seeded.toLocaleString('en-US')} dead jobs (${Math.round(averageBytes)} bytes each) in ${((Date.now() - seedStart) / 1000).toFixed(1)} s`,
    );

    const load = loadavg()[0]!.toFixed(2);
    const redisCpuBefore = (await redisCpuSeconds(redis)).total;
    const { code, seconds, peak, cpuSeconds, stdout, stderr } = await runMeasured(
      [
        // CLI_NODE_ARGS: node options for the CLI (e.g. --cpu-prof).
        ...(process.env.CLI_NODE_ARGS ?? '').split(' ').filter((arg) => arg !== ''),
        `${ROOT}bin/run.js`,
        'dlq',
        'requeue',
        '--all',
        '--yes',
        '--json',
        '--redis-url',
        server.url,
        '--prefix',
        PREFIX,
      ],
      ROOT,
    );
    if (code !== 0) throw new Error(`requeue exited ${code}: ${stderr.trim()}`);
    const redisCpu = (await redisCpuSeconds(redis)).total - redisCpuBefore;
    const result = JSON.parse(stdout) as { requeued: number };

    const [dead, high, normal, low, gpuHigh, gpuNormal, gpuLow] = (await Promise.all(
      [
        keys.dead,
        keys.queue('high'),
        keys.queue('normal'),
        keys.queue('low'),
        keys.queue('high', 'gpu'),
        keys.queue('normal', 'gpu'),
        keys.queue('low', 'gpu'),
      ].map((key) => redis.llen(key)),
    )) as [number, number, number, number, number, number, number];
    const gpu = gpuHigh + gpuNormal + gpuLow;
    const ready = high + normal + low + gpu;
    const sample = JSON.parse((await redis.get(keys.job(SAMPLE_ID))) ?? '{}') as { attempts?: number };
    const ttl = await redis.ttl(keys.job(SAMPLE_ID));
    const ok =
      result.requeued === JOBS && dead === 0 && ready === JOBS && sample.attempts === 0 && ttl === -1;

    console.log(
      `requeued ${result.requeued.toLocaleString('en-US')} jobs: ${ok ? 'all moved once, attempts 0, no TTL' : 'CHECK FAILED'}`,
    );
    console.log(`  dead ${dead}, ready ${ready} (high ${high}, normal ${normal}, low ${low}, gpu ${gpu})`);
    console.log(
      `wall time      ${seconds.toFixed(2)} s  (target ≤ ${TARGET_SECONDS} s)  ${seconds <= TARGET_SECONDS ? 'OK' : 'OVER'}`,
    );
    console.log(`CPU time       Redis ${redisCpu.toFixed(1)} s, the CLI ${cpuSeconds.toFixed(1)} s`);
    const peakMb = mibToMb(peak);
    console.log(
      peak > 0
        ? `peak RSS       ${peak.toFixed(0)} MiB = ${peakMb.toFixed(0)} MB  (target ≤ ${TARGET_MB} MB)  ${peakMb <= TARGET_MB ? 'OK' : 'OVER'}`
        : 'peak RSS       not measured (no /proc/<pid>/status on this system)',
    );
    console.log(
      `machine        ${cpuModel()}, ${cpus().length} cores, Node ${process.version}, Redis ${redisVersion}, load average ${load} at start`,
    );
    printFiguresLine(
      'dlq-requeue',
      { seconds, peakMib: peak },
      {
        jobs: JOBS,
        cpu_seconds: { redis: Number(redisCpu.toFixed(2)), cli: Number(cpuSeconds.toFixed(2)) },
        all_moved_once: ok,
      },
      { wall_seconds: TARGET_SECONDS, peak_rss_mb: TARGET_MB },
    );
    if (!ok) process.exitCode = 1;
  } finally {
    redis.disconnect();
    await server.destroy();
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
