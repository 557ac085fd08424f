import { Flags } from '@oclif/core';
import { BananasCommand } from '../cli/base-command.js';
import { ExitCode } from '../cli/exit-codes.js';
import { color, formatCount, table } from '../cli/render.js';
import { assertPrefix, Keys } from '../core/keys.js';
import { diagnose, type DoctorReport } from '../inspector/doctor.js';
import { formatBytes } from '../inspector/health.js';

export type DoctorResult = DoctorReport & { exit_code: number };

export default class Doctor extends BananasCommand<typeof Doctor> {
  static override summary = "The runbook's Redis checks in one report, with advice";
  static override description = `Reads INFO, CONFIG GET, SLOWLOG and SCANs the keys under the prefix (never KEYS): memory (used, peak, maxmemory, fragmentation), clients against maxclients, the eviction policy, persistence (RDB and AOF status, last save, AOF rewrite), the latest slowlog entries, and the bananas keys by kind with their memory (MEMORY USAGE on a random sample per kind, extrapolated; the report says when figures are estimates).

Advice follows what a job queue needs: maxmemory-policy noeviction (never allkeys-lru, which evicts queued jobs), AOF with appendfsync everysec, and never deleting job keys to free memory.

Exit code: 0 when every finding is ok, 5 when any is a warning, 6 when any is critical (as health).`;

  static override examples = [
    '<%= config.bin %> doctor',
    '<%= config.bin %> doctor --json | jq \'.findings[] | select(.status != "ok")\'',
  ];

  static override flags = {
    sample: Flags.integer({
      min: 1,
      max: 10_000,
      default: 200,
      summary: 'Keys per kind whose MEMORY USAGE is read',
    }),
  };

  async run(): Promise<DoctorResult> {
    const { flags } = this;
    assertPrefix(flags.prefix);
    const redis = await this.redis();
    const report = await this.withProgress(`Scanning keys under ${flags.prefix}`, (progress) =>
      diagnose(redis, new Keys(flags.prefix), {
        samplePerCategory: flags.sample,
        onProgress: (scanned) => progress.update(scanned),
      }),
    );
    const exitCode =
      report.status === 'critical'
        ? ExitCode.HEALTH_CRITICAL
        : report.status === 'warning'
          ? ExitCode.HEALTH_WARNING
          : ExitCode.OK;
    const result: DoctorResult = { ...report, exit_code: exitCode };
    this.print(renderDoctor(result));
    if (exitCode !== ExitCode.OK) {
      if (this.jsonEnabled()) this.logJson(result);
      this.exit(exitCode);
    }
    return result;
  }
}

function paint(status: string, text: string): string {
  if (status === 'critical') return color.red.bold(text);
  if (status === 'warning') return color.yellow(text);
  return color.green(text);
}

function renderDoctor(report: DoctorResult): string {
  const lines = [`${color.bold('Doctor:')} ${paint(report.status, report.status.toUpperCase())}`];
  let section = '';
  for (const f of report.findings) {
    if (f.section !== section) {
      section = f.section;
      lines.push('', color.bold(section));
    }
    lines.push(`  ${paint(f.status, f.status.padEnd(8))}  ${f.message}`);
    if (f.advice) lines.push(`  ${''.padEnd(8)}  ${color.cyan(`→ ${f.advice}`)}`);
  }
  if (report.keys.categories.length > 0) {
    lines.push(
      '',
      color.bold(`keys under ${report.prefix}`) + color.dim(` (${report.keys.memory_note})`),
      table(
        ['Kind', 'Keys', 'Memory', 'Sampled'],
        report.keys.categories.map((c) => [
          c.name,
          formatCount(c.count),
          c.memory_bytes === null ? '-' : `${c.estimated ? '~' : ''}${formatBytes(c.memory_bytes)}`,
          formatCount(c.sampled),
        ]),
      ),
    );
  }
  if (report.slowlog.latest.length > 0) {
    lines.push(
      '',
      color.bold(`slowlog (latest ${report.slowlog.latest.length} of ${report.slowlog.length})`),
      table(
        ['Id', 'At', 'Duration', 'Command'],
        report.slowlog.latest.map((e) => [e.id, e.at, `${(e.duration_us / 1000).toFixed(1)} ms`, e.command]),
      ),
    );
  }
  return lines.join('\n');
}
