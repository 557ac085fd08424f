import { BananasCommand } from '../../cli/base-command.js';
import { durationFlag } from '../../cli/flags.js';
import { color, formatCount, table } from '../../cli/render.js';
import { errorRateWindowFlag } from '../../cli/shared-flags.js';
import { formatDuration } from '../../core/duration.js';
import { UsageError } from '../../core/errors.js';
import { assertPrefix, Keys } from '../../core/keys.js';
import { statsSampler, windowMinutesFromMs, type Level, type QueueStats } from '../../inspector/stats.js';

const MIN_WATCH_MS = 500;

export default class QueueStatsCommand extends BananasCommand<typeof QueueStatsCommand> {
  static override summary = 'Queue depths, processing, scheduled, dead-letter, workers and error rate';
  static override description = `Every count is read with LLEN / ZCARD / ZCOUNT in one MULTI (no list is loaded), so it is safe on queues of any size. Figures are coloured by the runbook's thresholds: queue depth < 100 green, 100-1000 yellow, > 1000 red; dead-letter < 10 / 10-100 / > 100; error rate < 2% / 2-10% / > 10%; utilization 50-95% green, otherwise yellow.

The error rate is jobs that failed for good (dead-lettered) over jobs completed or failed, from the per-minute counters bananas workers write; retried attempts are not failures. Utilization is jobs in flight over the concurrency of live workers (a heartbeat within 15 s), as of their last heartbeat.

--watch redraws until Ctrl-C. It cannot be combined with --json, which prints one document: run the command in a loop for a series.`;

  static override examples = [
    '<%= config.bin %> queue stats',
    '<%= config.bin %> queue stats --watch 2s',
    '<%= config.bin %> queue stats --window 15m --json | jq .error_rate.rate_percent',
  ];

  static override flags = {
    watch: durationFlag({ summary: 'Redraw at this interval (e.g. 2s) until Ctrl-C' }),
    window: errorRateWindowFlag,
  };

  async run(): Promise<QueueStats> {
    const { flags } = this;
    assertPrefix(flags.prefix);
    const windowMinutes = windowMinutesFromMs(flags.window);
    if (flags.watch !== undefined) {
      if (this.jsonEnabled()) {
        throw new UsageError(
          '--watch cannot be combined with --json (--json prints one document; run the command in a loop instead)',
        );
      }
      if (flags.watch < MIN_WATCH_MS) throw new UsageError(`--watch must be at least ${MIN_WATCH_MS}ms`);
    }
    const sample = statsSampler(await this.redis(), new Keys(flags.prefix), { windowMinutes });
    if (flags.watch === undefined) {
      const stats = await this.withProgress('Reading queue stats', () => sample());
      this.print(renderStats(stats));
      return stats;
    }
    return this.watch(sample, flags.watch);
  }

  private async watch(sample: () => Promise<QueueStats>, everyMs: number): Promise<QueueStats> {
    let stopped = false;
    let wake: (() => void) | undefined;
    const stop = () => {
      stopped = true;
      wake?.();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
    const clear = process.stdout.isTTY ? '\x1b[H\x1b[2J' : '';
    let last: QueueStats | undefined;
    try {
      while (!stopped) {
        last = await sample();
        const footer = color.dim(
          `every ${formatDuration(everyMs)} · ${new Date().toLocaleTimeString()} · Ctrl-C to stop`,
        );
        this.print(`${clear}${renderStats(last)}\n\n${footer}${clear === '' ? '\n' : ''}`);
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, everyMs);
          wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
      }
    } finally {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
    }
    return last as QueueStats;
  }
}

function paint(level: Level | null, text: string): string {
  if (level === 'critical') return color.red.bold(text);
  if (level === 'warning') return color.yellow(text);
  if (level === 'ok') return color.green(text);
  return text;
}

function renderStats(stats: QueueStats): string {
  const rows = stats.ready.queues.map((q) => [q.name, q.key, paint(q.level, formatCount(q.depth))]);
  rows.push([color.bold('total'), '', paint(stats.ready.level, formatCount(stats.ready.total))]);
  const lines = [table(['Ready queue', 'Key', 'Depth'], rows)];
  const p = stats.processing;
  const processingNotes = [
    p.lease_expired > 0 ? color.yellow(`${formatCount(p.lease_expired)} past their lease`) : undefined,
    p.no_lease > 0 ? color.yellow(`${formatCount(p.no_lease)} without a lease`) : undefined,
  ].filter(Boolean);
  const s = stats.scheduled;
  const w = stats.workers;
  const e = stats.error_rate;
  const utilization =
    w.utilization_percent === null
      ? 'utilization n/a'
      : `utilization ${paint(w.level, `${w.utilization_percent}%`)} (${formatCount(w.in_flight)} of ${formatCount(w.concurrency)} slots busy)`;
  const errorRate =
    e.rate_percent === null
      ? `n/a: nothing completed or failed in the last ${e.window_minutes} min`
      : `${paint(e.level, `${e.rate_percent}%`)} over ${e.window_minutes} min (${formatCount(e.failed)} failed, ${formatCount(e.completed)} completed, ${formatCount(e.retried)} retried attempts)`;
  const label = (text: string) => color.bold(text.padEnd(13));
  lines.push(
    '',
    `${label('Processing')}${formatCount(p.total)}${processingNotes.length > 0 ? ` (${processingNotes.join(', ')})` : ''}`,
    `${label('Scheduled')}${formatCount(s.total)} (${formatCount(s.due)} due now, ${formatCount(s.later)} later)`,
    `${label('Dead letter')}${paint(stats.dead_letter.level, formatCount(stats.dead_letter.depth))}`,
    `${label('Workers')}${formatCount(w.live)} live${w.stale > 0 ? color.yellow(`, ${formatCount(w.stale)} stale`) : ''}; ${utilization}`,
    `${label('Error rate')}${errorRate}`,
  );
  for (const problem of stats.problems) lines.push(color.yellow(`! ${problem}`));
  return lines.join('\n');
}
