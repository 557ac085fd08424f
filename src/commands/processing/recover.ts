import { Flags } from '@oclif/core';
import { BananasCommand } from '../../cli/base-command.js';
import { confirmDestructive } from '../../cli/confirm.js';
import { durationFlag, positiveIntFlag } from '../../cli/flags.js';
import { color, table } from '../../cli/render.js';
import { destructiveFlags } from '../../cli/shared-flags.js';
import { formatDuration } from '../../core/duration.js';
import { UsageError } from '../../core/errors.js';
import { assertPrefix } from '../../core/keys.js';
import { recoverProcessing, type RecoverReport } from '../../inspector/processing.js';

export default class ProcessingRecover extends BananasCommand<typeof ProcessingRecover> {
  static override summary = 'Return stuck jobs from processing to the head of their queue';
  static override description = `Always: jobs whose lease expired (what running bananas workers do every second). With --older-than: also leased jobs whose owner worker is gone (no heartbeat) and whose document is at least that old. With --include-unleased (needs --older-than): also ids without a lease (left by an original worker or a crash) whose document's updated_at is at least that old; ids without a readable updated_at are never moved.

Each job is moved in one atomic step, and only if it is still in processing with the lease (and, for unleased ids, the document) seen when it was judged; anything that changed meanwhile is left and counted. Jobs go to the head of their ready list, so they run next. Delivery is at-least-once: a job whose worker is in fact still running it will run again.`;
  static override examples = [
    '<%= config.bin %> processing recover --dry-run',
    '<%= config.bin %> processing recover --older-than 15m --include-unleased --yes',
    '<%= config.bin %> processing recover --older-than 1h --json --yes',
  ];

  static override flags = {
    ...destructiveFlags,
    'older-than': durationFlag({
      summary: 'Also move leased jobs of dead workers (and, with --include-unleased, unleased ids) this old',
    }),
    'include-unleased': Flags.boolean({
      summary: 'Also move ids without a lease whose document is older than --older-than',
    }),
    limit: positiveIntFlag({ summary: 'Move at most this many jobs' }),
  };

  async run(): Promise<RecoverReport> {
    const { flags } = this;
    assertPrefix(flags.prefix);
    if (flags['older-than'] !== undefined && flags['older-than'] <= 0) {
      throw new UsageError('--older-than must be more than 0 (e.g. 10m)');
    }
    if (flags['include-unleased'] && flags['older-than'] === undefined) {
      throw new UsageError(
        '--include-unleased needs --older-than <age>: how long an id without lease must have been untouched',
      );
    }
    const dryRun = flags['dry-run'] === true;
    const question = 'Return stuck jobs to their queues?';
    // Scripts without --yes are refused before anything is read (confirmDestructive throws without a TTY).
    if (!dryRun && !flags.yes && !process.stdin.isTTY) await confirmDestructive(question, { yes: false });
    const report = await this.withProgress('Reading processing', async (progress) =>
      recoverProcessing(await this.redis(), flags.prefix, {
        olderThanMs: flags['older-than'],
        includeUnleased: flags['include-unleased'] === true,
        dryRun,
        limit: flags.limit,
        onProgress: (done, total) => progress.update(done, total),
        confirm:
          dryRun || flags.yes
            ? undefined
            : async (count) => {
                progress.stop();
                await confirmDestructive(
                  `Return ${count} stuck job${count === 1 ? '' : 's'} to their queues (list them with --dry-run)?`,
                  {
                    yes: false,
                  },
                );
              },
      }),
    );
    this.print(render(report));
    return report;
  }
}

function render(report: RecoverReport): string {
  const lines: string[] = [];
  if (report.jobs.length > 0) {
    lines.push(
      table(
        ['ID', 'NAME', 'WHY', 'OWNER', 'AGE', report.dry_run ? 'WOULD GO TO' : 'RETURNED TO'],
        report.jobs.map((j) => [
          j.id,
          j.name ?? '-',
          j.reason.replace(/_/g, ' '),
          j.owner ?? '-',
          j.age_ms === null ? '-' : formatDuration(Math.max(0, j.age_ms)),
          j.queue,
        ]),
      ),
    );
    if (report.jobs_truncated) lines.push(`… and ${report.moved - report.jobs.length} more.`);
  }
  const verb = report.dry_run ? 'Would return' : 'Returned';
  const { by_reason: r, left } = report;
  lines.push(
    `${verb} ${report.moved} of ${report.examined} job${report.examined === 1 ? '' : 's'} in processing to their queue` +
      (report.moved > 0
        ? ` (${r.lease_expired} lease expired, ${r.owner_dead} owner gone, ${r.unleased} unleased).`
        : '.'),
  );
  if (report.changed > 0)
    lines.push(color.yellow(`${report.changed} changed before the move and were left alone.`));
  const kept: string[] = [];
  if (left.lease_live > 0) kept.push(`${left.lease_live} with a live lease`);
  if (left.unleased > 0) kept.push(`${left.unleased} without lease`);
  if (left.unleased_unknown_age > 0)
    kept.push(`${left.unleased_unknown_age} without lease and of unknown age`);
  if (left.over_limit > 0) kept.push(`${left.over_limit} over --limit`);
  if (kept.length > 0) lines.push(`Left in processing: ${kept.join(', ')}.`);
  if (left.unleased > 0 && !report.include_unleased) {
    lines.push('Ids without lease are moved only with --older-than <age> --include-unleased.');
  }
  if (report.dry_run) lines.push(color.dim('Dry run: nothing was changed.'));
  return lines.join('\n');
}
