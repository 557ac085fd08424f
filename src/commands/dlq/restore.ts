import { Flags } from '@oclif/core';
import { BananasCommand } from '../../cli/base-command.js';
import { confirmDestructive } from '../../cli/confirm.js';
import { startProgress } from '../../cli/progress.js';
import { color, formatCount, table } from '../../cli/render.js';
import { destructiveFlags } from '../../cli/shared-flags.js';
import { assertPrefix } from '../../core/keys.js';
import { restoreDeadLetters, type RestoreResult, type RestoreTarget } from '../../inspector/dlq.js';

export default class DlqRestore extends BananasCommand<typeof DlqRestore> {
  static override summary = 'Restore a dead-letter backup, into the dead-letter queue or ready to run';
  static override description =
    'Reads a file written by `dlq backup` (gzip recognized by content), after checking its header and that it is complete. Idempotent: an entry is restored only if no document exists under its id (a document is written and its id pushed in one step), so restoring twice neither duplicates ids nor overwrites newer documents. --to queue makes the jobs ready (attempts reset, like `dlq requeue`) and asks for confirmation; --to dlq (default) puts them back in the dead-letter queue, without TTL.';
  static override examples = [
    '<%= config.bin %> dlq restore --in dlq-20251110.jsonl.gz',
    '<%= config.bin %> dlq restore --in dlq.jsonl --to queue --dry-run',
    '<%= config.bin %> dlq restore --in dlq.jsonl --to queue --yes --json',
  ];

  static override flags = {
    in: Flags.string({ char: 'i', required: true, summary: 'Backup file to read (.gz or plain)' }),
    to: Flags.string({
      options: ['dlq', 'queue'],
      default: 'dlq',
      summary: 'dlq: back into the dead-letter queue; queue: ready to run (attempts reset)',
    }),
    'allow-other-prefix': Flags.boolean({ summary: 'Restore a backup taken under another --prefix' }),
    ...destructiveFlags,
  };

  async run(): Promise<RestoreResult> {
    const { flags } = this;
    assertPrefix(flags.prefix);
    const to = flags.to as RestoreTarget;
    const redis = await this.redis();
    const progress = startProgress('Restoring', { json: this.jsonEnabled() });
    return this.runInterruptible(
      (signal) =>
        restoreDeadLetters(redis, flags.prefix, {
          in: flags.in,
          to,
          dryRun: flags['dry-run'],
          allowOtherPrefix: flags['allow-other-prefix'],
          // Back into the dead-letter queue changes nothing that exists; making jobs run again does.
          confirm:
            to === 'queue' ? (question) => confirmDestructive(question, { yes: flags.yes }) : undefined,
          signal,
          onProgress: (done, total) => progress.update(done, total),
        }),
      { progress, render },
    );
  }
}

function render(result: RestoreResult): string {
  const verb = result.dry_run ? 'Would restore' : 'Restored';
  const lines = [
    `${verb} ${formatCount(result.restored)} of ${formatCount(result.entries)} entries from ${result.file} (backup of ${result.backup.prefix} taken ${result.backup.created_at}).`,
  ];
  if (result.queues.length > 0)
    lines.push(
      table(
        ['LIST', 'IDS'],
        result.queues.map((q) => [q.queue, formatCount(q.count)]),
      ),
    );
  const skipped = [
    result.skipped_existing ? `${formatCount(result.skipped_existing)} already exist (left untouched)` : '',
    result.skipped_missing_document ? `${formatCount(result.skipped_missing_document)} had no document` : '',
    result.not_a_job ? `${formatCount(result.not_a_job)} are not jobs (restore them --to dlq)` : '',
  ].filter(Boolean);
  if (skipped.length > 0) lines.push(`Skipped: ${skipped.join(', ')}.`);
  if (result.invalid > 0) {
    const where = result.invalid_lines.map((l) => `line ${l.line}: ${l.reason}`).join('; ');
    lines.push(
      color.yellow(
        `${formatCount(result.invalid)} invalid line${result.invalid === 1 ? '' : 's'} skipped (${where}).`,
      ),
    );
  }
  if (result.interrupted)
    lines.push(
      color.yellow('Interrupted: the rest of the file was not restored (run it again: it is idempotent).'),
    );
  return lines.join('\n');
}
