import { Flags } from '@oclif/core';
import { BananasCommand } from '../../cli/base-command.js';
import { confirmDestructive } from '../../cli/confirm.js';
import { startPhasedProgress } from '../../cli/progress.js';
import { color, formatCount } from '../../cli/render.js';
import { destructiveFlags } from '../../cli/shared-flags.js';
import { UsageError } from '../../core/errors.js';
import { assertPrefix } from '../../core/keys.js';
import { clearDeadLetters, type ClearResult } from '../../inspector/dlq.js';

export default class DlqClear extends BananasCommand<typeof DlqClear> {
  static override summary = 'Delete the dead-letter queue and its documents, after backing it up';
  static override description =
    'Writes the backup first (as `dlq backup`), then removes exactly the entries it holds: an entry leaves the queue, and its document is deleted, only if its document is still the one backed up. Jobs dead-lettered while it runs and entries requeued meanwhile are left alone; result hashes are never touched. Refuses to run without --backup <file> unless --no-backup is given.';
  static override examples = [
    '<%= config.bin %> dlq clear --backup dlq-$(date +%Y%m%d-%H%M).jsonl.gz',
    '<%= config.bin %> dlq clear --backup dlq.jsonl --dry-run',
    '<%= config.bin %> dlq clear --no-backup --yes --json',
  ];

  static override flags = {
    backup: Flags.string({ summary: 'Back up to this file first (.gz: compressed)' }),
    'no-backup': Flags.boolean({ summary: 'Clear without a backup (the documents are lost)' }),
    force: Flags.boolean({ summary: 'Overwrite the backup file if it exists' }),
    ...destructiveFlags,
  };

  async run(): Promise<ClearResult> {
    const { flags } = this;
    if (flags.backup === undefined && !flags['no-backup']) {
      throw new UsageError(
        'refusing to clear the dead-letter queue without a backup: give --backup <file> (or --no-backup)',
      );
    }
    if (flags.backup !== undefined && flags['no-backup'])
      throw new UsageError('--backup and --no-backup exclude each other');
    assertPrefix(flags.prefix);
    const redis = await this.redis();
    const progress = startPhasedProgress(
      { backup: 'Backing up', clear: 'Clearing' },
      { json: this.jsonEnabled() },
    );
    return this.runInterruptible(
      (signal) =>
        clearDeadLetters(redis, flags.prefix, {
          backup: flags.backup,
          noBackup: flags['no-backup'],
          force: flags.force,
          dryRun: flags['dry-run'],
          confirm: (question) => confirmDestructive(question, { yes: flags.yes }),
          signal,
          onProgress: (phase, done, total) => progress.update(phase, done, total),
        }),
      { progress, render },
    );
  }
}

function render(result: ClearResult): string {
  const lines: string[] = [];
  if (result.backup && !result.backup.interrupted) {
    lines.push(`Backed up ${formatCount(result.backup.entries)} entries to ${result.backup.file}.`);
  }
  const verb = result.dry_run ? 'Would remove' : 'Removed';
  lines.push(
    `${verb} ${formatCount(result.removed)} entries from ${result.dead_key} and ${result.dry_run ? 'delete' : 'deleted'} ${formatCount(result.documents_deleted)} documents.`,
  );
  if (result.documents_kept)
    lines.push(`Kept ${formatCount(result.documents_kept)} documents of live jobs (duplicate ids).`);
  if (result.missing_documents)
    lines.push(`${formatCount(result.missing_documents)} entries had no document.`);
  if (result.changed)
    lines.push(
      color.yellow(`Left ${formatCount(result.changed)} entries whose document changed after the backup.`),
    );
  if (result.gone) lines.push(`${formatCount(result.gone)} entries were already gone.`);
  if (result.interrupted) {
    lines.push(
      color.yellow(
        result.backup?.interrupted
          ? 'Interrupted during the backup: nothing was removed.'
          : 'Interrupted: the rest was left in the dead-letter queue.',
      ),
    );
  }
  return lines.join('\n');
}
