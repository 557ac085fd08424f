import { Flags } from '@oclif/core';
import type { RedisClient } from '../core/connection.js';
import { BananasCommand } from '../cli/base-command.js';
import { ExitCode } from '../cli/exit-codes.js';
import { durationFlag } from '../cli/flags.js';
import { color } from '../cli/render.js';
import { errorRateWindowFlag } from '../cli/shared-flags.js';
import { BananasError, errorMessage, UsageError } from '../core/errors.js';
import { assertPrefix, Keys } from '../core/keys.js';
import { passwordOf, redactSecrets } from '../core/redact.js';
import {
  checkHealth,
  DEFAULT_HEALTH_LIMITS,
  unreachableReport,
  type HealthReport,
  type HealthStatus,
} from '../inspector/health.js';
import { windowMinutesFromMs } from '../inspector/stats.js';

export type HealthResult = HealthReport & { exit_code: number };

const EXIT_CODES: Record<HealthStatus, number> = {
  ok: ExitCode.OK,
  warning: ExitCode.HEALTH_WARNING,
  critical: ExitCode.HEALTH_CRITICAL,
  unreachable: ExitCode.REDIS,
};

const percentFlag = Flags.custom<number>({
  parse: async (input, _ctx, opts) => {
    const value = Number(input.trim().replace(/%$/, ''));
    if (input.trim() === '' || !Number.isFinite(value) || value < 0 || value > 100) {
      throw new UsageError(
        `--${opts.name} must be a percentage from 0 to 100 (got ${JSON.stringify(input)})`,
      );
    }
    return value;
  },
});

const countFlag = Flags.custom<number>({
  parse: async (input, _ctx, opts) => {
    const value = Number(input);
    if (!/^\d+$/.test(input.trim()) || !Number.isSafeInteger(value)) {
      throw new UsageError(`--${opts.name} must be a whole number ≥ 0 (got ${JSON.stringify(input)})`);
    }
    return value;
  },
});

export default class Health extends BananasCommand<typeof Health> {
  static override summary =
    'Check Redis and the queues; exit 0 healthy, 5 warning, 6 critical, 4 unreachable';
  static override description = `For CI, cron and alerting. Checks: Redis reachable and PING latency; memory used against maxmemory (warning above 80%, critical above 95%); maxmemory-policy (anything but noeviction is a warning: an evicting Redis drops queued jobs); the deepest ready queue, the dead-letter queue and the error rate (warning from the runbook's levels: 100 jobs, 10 dead, 2%; critical above the --max-* values); live workers that actually consume (critical when jobs wait and no live worker serves them, or when live workers settled nothing in 2 minutes, have nothing in flight and a job has waited over a minute); jobs stuck in processing: a lease past its deadline (warning after a minute: no worker is recovering it) or an entry without a lease (critical after --max-processing-age, aged from its document's last update since the original worker does not rewrite it when it takes a job; the 1,000 oldest entries are examined); due scheduled jobs nobody promotes.

Each check has a name, status (ok, warning, critical), value, threshold and message. With --json the report is printed even when Redis is unreachable (status "unreachable", exit 4).`;

  static override examples = [
    '<%= config.bin %> health',
    '<%= config.bin %> health --max-depth 5000 --max-error-rate 5 --json',
    '<%= config.bin %> health --max-processing-age 30m || page-oncall',
  ];

  static override flags = {
    'max-depth': countFlag({
      default: DEFAULT_HEALTH_LIMITS.maxDepth,
      summary: 'Critical above this many jobs in one ready queue',
    }),
    'max-dlq': countFlag({
      default: DEFAULT_HEALTH_LIMITS.maxDeadLetter,
      summary: 'Critical above this many dead-lettered jobs',
    }),
    'max-error-rate': percentFlag({
      default: DEFAULT_HEALTH_LIMITS.maxErrorRatePercent,
      summary: 'Critical above this error rate, in percent',
    }),
    'max-processing-age': durationFlag({
      default: DEFAULT_HEALTH_LIMITS.maxProcessingAgeMs,
      defaultHelp: async () => '10m',
      summary: 'Critical when a job sits in processing without a live lease for longer',
    }),
    window: errorRateWindowFlag,
  };

  async run(): Promise<HealthResult> {
    const { flags } = this;
    assertPrefix(flags.prefix);
    const windowMinutes = windowMinutesFromMs(flags.window);
    if (flags['max-processing-age'] <= 0) throw new UsageError('--max-processing-age must be more than 0');
    const redis = await this.connectOrReport(flags.prefix);
    const report = await this.withProgress('Checking health', () =>
      checkHealth(redis, new Keys(flags.prefix), {
        maxDepth: flags['max-depth'],
        maxDeadLetter: flags['max-dlq'],
        maxErrorRatePercent: flags['max-error-rate'],
        maxProcessingAgeMs: flags['max-processing-age'],
        windowMinutes,
      }),
    );
    const result: HealthResult = { ...report, exit_code: EXIT_CODES[report.status] };
    this.print(renderHealth(result));
    if (result.exit_code !== ExitCode.OK) {
      // The report is the output even when the exit code says warning/critical.
      if (this.jsonEnabled()) this.logJson(result);
      this.exit(result.exit_code);
    }
    return result;
  }

  /**
   * With --json, an unreachable Redis still yields a health document (status "unreachable", exit 4), so
   * a monitor parsing stdout always gets one; otherwise the usual one-line error and exit 4.
   */
  private async connectOrReport(prefix: string): Promise<RedisClient> {
    try {
      return await this.redis();
    } catch (err) {
      const unreachable =
        err instanceof BananasError && (err.code === 'REDIS_UNAVAILABLE' || err.code === 'REDIS_AUTH');
      if (!unreachable || !this.jsonEnabled()) throw err;
      const message = redactSecrets(errorMessage(err), [
        passwordOf(this.flags['redis-url'] ?? process.env.REDIS_URL),
      ]).replace(/\s+/g, ' ');
      const report = unreachableReport(prefix, message);
      this.logJson({
        ...report,
        exit_code: ExitCode.REDIS,
        error: { code: err.code, message, exitCode: ExitCode.REDIS },
      });
      process.stderr.write(`bananas: ${message}\n`);
      this.exit(ExitCode.REDIS);
      throw err; // not reached: exit() throws
    }
  }
}

function paint(status: string, text: string): string {
  if (status === 'critical' || status === 'unreachable') return color.red.bold(text);
  if (status === 'warning') return color.yellow(text);
  return color.green(text);
}

function renderHealth(result: HealthResult): string {
  const version = result.redis.version ? `Redis ${result.redis.version}, ` : '';
  const lines = [
    `${color.bold('Health:')} ${paint(result.status, result.status.toUpperCase())} ${color.dim(`(${version}prefix ${result.prefix})`)}`,
  ];
  const nameWidth = Math.max(...result.checks.map((c) => c.name.length));
  for (const check of result.checks) {
    const value =
      check.value === null
        ? '-'
        : `${check.value}${check.unit === 'percent' ? '%' : check.unit === 'ms' ? ' ms' : check.unit === 'seconds' ? ' s' : ''}`;
    lines.push(
      `  ${paint(check.status, check.status.padEnd(8))}  ${check.name.padEnd(nameWidth)}  ${value.padEnd(12)}  ${check.message}`,
    );
    if (check.status !== 'ok' && check.threshold) {
      lines.push(
        color.dim(`  ${''.padEnd(8)}  ${''.padEnd(nameWidth)}  ${''.padEnd(12)}  (${check.threshold})`),
      );
    }
  }
  return lines.join('\n');
}
