import { Flags } from '@oclif/core';
import { BananasCommand } from '../../cli/base-command.js';
import { startProgress } from '../../cli/progress.js';
import { formatCount } from '../../cli/render.js';
import { assertPrefix } from '../../core/keys.js';
import { backupDeadLetters, type BackupResult } from '../../inspector/dlq.js';

export default class DlqBackup extends BananasCommand<typeof DlqBackup> {
  static override summary = 'Write the dead-letter queue, with its documents, to a JSON Lines file';
  static override description =
    'One header line ({format, version, created_at, prefix, dead_key, count}) then one line per entry, oldest first: {id, document (exactly as stored, null if missing), ttl_ms}. A name ending in .gz is gzip-compressed. The file is written aside and renamed into place only when complete; an existing file is refused unless --force. Nothing in Redis is changed.';
  static override examples = [
    '<%= config.bin %> dlq backup --out dlq-$(date +%Y%m%d-%H%M).jsonl.gz',
    '<%= config.bin %> dlq backup --out dlq.jsonl --force --json',
  ];

  static override flags = {
    out: Flags.string({ char: 'o', required: true, summary: 'File to write (.gz: compressed)' }),
    force: Flags.boolean({ summary: 'Overwrite the file if it exists' }),
  };

  async run(): Promise<BackupResult> {
    const { flags } = this;
    assertPrefix(flags.prefix);
    const redis = await this.redis();
    const progress = startProgress('Backing up the dead-letter queue', { json: this.jsonEnabled() });
    return this.runInterruptible(
      (signal) =>
        backupDeadLetters(redis, flags.prefix, {
          out: flags.out,
          force: flags.force,
          signal,
          onProgress: (done, total) => progress.update(done, total),
        }),
      { progress, render },
    );
  }
}

function render(result: BackupResult): string {
  if (result.interrupted) return 'Interrupted: no backup file was written.';
  const missing = result.missing_documents ? ` (${result.missing_documents} without a document)` : '';
  return `Backed up ${formatCount(result.entries)} entries of ${result.dead_key}${missing} to ${result.file} (${formatCount(result.bytes)} bytes).`;
}
