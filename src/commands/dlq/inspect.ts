import { Flags } from '@oclif/core';
import { BananasCommand } from '../../cli/base-command.js';
import { durationFlag, positiveIntFlag } from '../../cli/flags.js';
import { color, formatCount, table } from '../../cli/render.js';
import { parseTimestamp } from '../../core/codec.js';
import { formatDuration } from '../../core/duration.js';
import { assertPrefix } from '../../core/keys.js';
import {
  assertInspectOptions,
  INSPECT_DEFAULT_LIMIT,
  INSPECT_MAX_LIMIT,
  inspectDeadLetters,
  type DeadLetterListing,
  type DeadLetterReport,
  type InspectOptions,
} from '../../inspector/dlq.js';

export default class DlqInspect extends BananasCommand<typeof DlqInspect> {
  static override summary = 'List dead-letter jobs, with totals by job name and by error';
  static override description =
    'Lists the dead-letter queue newest first: id, name, priority, attempts, when it failed, its error and the time left before its document expires. Stubs the original worker wrote, corrupt documents and ids without a document are listed as such. The totals cover every matching entry of the whole queue, read in pages (nothing is changed).';
  static override examples = [
    '<%= config.bin %> dlq inspect',
    '<%= config.bin %> dlq inspect --name charge_card --since 2h',
    '<%= config.bin %> dlq inspect --grep "deadline exceeded" --limit 200 --json',
    '<%= config.bin %> dlq inspect --offset 50 --limit 50',
  ];

  static override flags = {
    limit: positiveIntFlag({
      summary: `Entries to list (at most ${INSPECT_MAX_LIMIT}) [default: ${INSPECT_DEFAULT_LIMIT}]`,
    }),
    offset: Flags.integer({ min: 0, default: 0, summary: 'Matching entries to skip, newest first' }),
    name: Flags.string({ multiple: true, summary: 'Only jobs with this name (repeat for several)' }),
    grep: Flags.string({ summary: 'Only entries whose error contains this text (case-insensitive)' }),
    since: durationFlag({ summary: 'Only jobs that failed within this long (e.g. 30m, 24h)' }),
  };

  async run(): Promise<DeadLetterReport> {
    const { flags } = this;
    const options: InspectOptions = {
      limit: flags.limit ?? INSPECT_DEFAULT_LIMIT,
      offset: flags.offset,
      names: flags.name,
      grep: flags.grep,
      sinceMs: flags.since,
    };
    assertPrefix(flags.prefix);
    assertInspectOptions(options);
    const report = await this.withProgress('Reading the dead-letter queue', async (progress) =>
      inspectDeadLetters(await this.redis(), flags.prefix, {
        ...options,
        onProgress: (done, total) => progress.update(done, total),
      }),
    );
    this.print(render(report));
    return report;
  }
}

function render(report: DeadLetterReport): string {
  const lines: string[] = [];
  const filtered = report.matched !== report.examined ? `, ${formatCount(report.matched)} matching` : '';
  lines.push(`${color.bold(report.dead_key)}: ${formatCount(report.length)} entries${filtered}`);
  if (report.entries.length === 0) {
    lines.push(report.matched === 0 ? 'Nothing to show.' : `No entries after offset ${report.offset}.`);
    return lines.join('\n');
  }
  const first = report.offset + 1;
  lines.push(
    `Newest first, ${first}-${report.offset + report.entries.length} of ${formatCount(report.matched)}:`,
  );
  lines.push(
    table(
      ['ID', 'NAME', 'PRIORITY', 'ATTEMPTS', 'FAILED AT', 'TTL', 'ERROR'],
      report.entries.map((entry) => row(entry)),
    ),
  );
  const { by_state: states, by_name: names, by_error: errors } = report.totals;
  const problems = [
    states.stub ? `${states.stub} stub` : '',
    states.corrupt ? `${states.corrupt} corrupt` : '',
    states.missing ? `${states.missing} without a document` : '',
  ].filter(Boolean);
  lines.push('');
  lines.push(
    `Totals: ${formatCount(states.job)} jobs${problems.length ? `, ${color.red(problems.join(', '))} (not requeueable)` : ''}`,
  );
  if (names.length > 0) {
    const rows: Array<[string, number]> = names.slice(0, 10).map((n) => [n.name, n.count]);
    const rest = names.slice(10).reduce((sum, n) => sum + n.count, report.totals.other_names);
    if (rest > 0) rows.push([color.dim('(other names)'), rest]);
    lines.push(table(['NAME', 'JOBS'], rows));
  }
  if (errors.length > 0) {
    const rows: Array<[string, number]> = errors.slice(0, 10).map((e) => [e.error.slice(0, 90), e.count]);
    const rest = errors.slice(10).reduce((sum, e) => sum + e.count, report.totals.other_errors);
    if (rest > 0) rows.push([color.dim('(other errors)'), rest]);
    lines.push(table(['ERROR', 'ENTRIES'], rows));
  }
  return lines.join('\n');
}

function row(entry: DeadLetterListing): string[] {
  const name = entry.state === 'job' ? (entry.name ?? '') : color.red(`(${entry.state})`);
  const failedAt = parseTimestamp(entry.failed_at ?? undefined);
  const error = (entry.error.split('\n', 1)[0] ?? '').slice(0, 60);
  return [
    entry.id,
    name,
    entry.priority ?? '',
    entry.attempts === null ? '' : `${entry.attempts}/${entry.max_retries}`,
    failedAt ? `${failedAt.toISOString().slice(0, 19)}Z` : (entry.failed_at ?? ''),
    entry.ttl_ms === null ? '-' : formatDuration(entry.ttl_ms),
    entry.error.length > 60 || entry.error.includes('\n') ? `${error}…` : error,
  ];
}
