/** The machine a benchmark ran on: printed at the top of every benchmark's output. */
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import type { Redis } from 'ioredis';

export interface MachineInfo {
  cpu_model: string;
  cores: number;
  memory_gb: number;
  node: string;
  redis_server: string;
}

/** The CPU model, from /proc/cpuinfo on Linux (os.cpus() elsewhere). */
export function cpuModel(): string {
  try {
    const line = readFileSync('/proc/cpuinfo', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('model name'));
    if (line) return line.split(':')[1]!.trim();
  } catch {
    // not Linux: use os.cpus()
  }
  return cpus()[0]?.model ?? 'unknown';
}

export function machineInfo(): MachineInfo {
  let redis = 'unknown';
  try {
    redis = execFileSync('redis-server', ['--version'], { encoding: 'utf8' }).trim();
  } catch {
    // not installed
  }
  return {
    cpu_model: cpuModel(),
    cores: cpus().length,
    memory_gb: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    redis_server: redis,
  };
}

export function printMachine(info: MachineInfo = machineInfo()): void {
  console.log(
    `machine: ${info.cpu_model}, ${info.cores} cores, ${info.memory_gb} GiB; node ${info.node}; ${info.redis_server}`,
  );
}

/** Targets are in MB (10^6 bytes); /proc reports kB that are KiB: a MiB is 1.048576 MB. */
export function mibToMb(mib: number): number {
  return (mib * 2 ** 20) / 1e6;
}

/**
 * The JSON line an operator-scale benchmark prints last, for programs (npm run bench reads it): its wall
 * time, the CLI's peak RSS in MiB and MB, `fields` of its own, its targets and the machine.
 */
export function printFiguresLine(
  benchmark: string,
  run: { seconds: number; peakMib: number },
  fields: Record<string, unknown>,
  targets: { wall_seconds: number; peak_rss_mb: number },
): void {
  console.log(
    JSON.stringify({
      benchmark,
      ...fields,
      wall_seconds: Number(run.seconds.toFixed(2)),
      peak_rss_mib: Number(run.peakMib.toFixed(1)),
      peak_rss_mb: Number(mibToMb(run.peakMib).toFixed(1)),
      targets,
      machine: machineInfo(),
    }),
  );
}

/** Peak resident set size (VmHWM) of a process, in MiB, read from /proc (Linux). */
export function peakRssMiB(pid: number): number | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = /VmHWM:\s+(\d+) kB/.exec(status)?.[1];
    return kb ? Number(kb) / 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** CPU time (user + system) a process has used so far, in seconds, read from /proc (Linux). */
export function cpuSecondsOf(pid: number): number | undefined {
  try {
    // Fields 14 and 15 (utime, stime), counted after the command name, which may hold spaces.
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100; // USER_HZ is 100 on Linux
  } catch {
    return undefined;
  }
}

/** Unix time in ms with sub-millisecond precision, comparable between processes on one machine. */
export function preciseNowMs(): number {
  return performance.timeOrigin + performance.now();
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

export interface MeasuredRun {
  code: number | null;
  /** Wall time. */
  seconds: number;
  /** Peak RSS (VmHWM) in MiB, polled every 20 ms; 0 when /proc is not available. */
  peak: number;
  /** CPU time in seconds at the last poll (up to 20 ms before the end); 0 when /proc is not available. */
  cpuSeconds: number;
  stdout: string;
  stderr: string;
}

/** Runs `node <args>` as a child (NO_COLOR set), collecting its output and polling its peak RSS until it exits. */
export async function runMeasured(args: string[], cwd: string): Promise<MeasuredRun> {
  const t0 = performance.now();
  const child = spawn(process.execPath, args, {
    cwd,
    env: { ...process.env, NO_COLOR: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let peak = 0;
  let cpuSeconds = 0;
  const poll = setInterval(() => {
    const rss = child.pid ? peakRssMiB(child.pid) : undefined;
    if (rss !== undefined) peak = Math.max(peak, rss);
    cpuSeconds = (child.pid ? cpuSecondsOf(child.pid) : undefined) ?? cpuSeconds;
  }, 20);
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
  const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
  clearInterval(poll);
  return { code, seconds: (performance.now() - t0) / 1000, peak, cpuSeconds, stdout, stderr };
}

/** Redis's CPU time so far, in seconds, from `INFO cpu`: user + system, and system (the kernel) alone. */
export async function redisCpuSeconds(redis: Redis): Promise<{ total: number; system: number }> {
  const info = await redis.info('cpu');
  const user = Number(/used_cpu_user:([\d.]+)/.exec(info)?.[1] ?? 0);
  const sys = Number(/used_cpu_sys:([\d.]+)/.exec(info)?.[1] ?? 0);
  return { total: user + sys, system: sys };
}

/** One command's line of `INFO commandstats`: calls, and microseconds spent in them. */

export interface CommandStat {
  calls: number;
  usec: number;
}

/** `INFO commandstats` by command name (commands run inside scripts included). */
export async function commandStats(redis: Redis): Promise<Map<string, CommandStat>> {
  const out = new Map<string, CommandStat>();
  for (const line of (await redis.info('commandstats')).split('\n')) {
    const m = /^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/.exec(line.trim());
    if (m) out.set(m[1]!, { calls: Number(m[2]), usec: Number(m[3]) });
  }
  return out;
}
