/**
 * Confirmation before destructive changes: `--yes` skips it; without a terminal on stdin there is no
 * prompt and the command refuses (scripts must say `--yes`).
 */
import { confirm } from '@inquirer/prompts';
import { UsageError } from '../core/errors.js';

export async function confirmDestructive(question: string, options: { yes: boolean }): Promise<void> {
  if (options.yes) return;
  if (!process.stdin.isTTY) {
    throw new UsageError(`${question.replace(/\?$/, '')}: refused without --yes (stdin is not a terminal)`);
  }
  const ok = await confirm({ message: question, default: false }, { output: process.stderr });
  if (!ok) throw new UsageError('cancelled; nothing was changed');
}
