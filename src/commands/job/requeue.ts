import { Flags } from '@oclif/core';
import { BananasCommand } from '../../cli/base-command.js';
import { color } from '../../cli/render.js';
import { destructiveFlags, jobIdArgs } from '../../cli/shared-flags.js';
import { assertPrefix, PRIORITIES } from '../../core/keys.js';
import {
  assertLookupId,
  quoteId,
  requeueJob,
  type RequeueResult,
  type RequeueTarget,
} from '../../inspector/job.js';

export default class JobRequeue extends BananasCommand<typeof JobRequeue> {
  static override summary = 'Move one job to a ready list, reset for a new run';
  static override description = `Moves THAT id from wherever it is (the dead-letter queue, the scheduled set, or a ready list of another priority) to the ready list of the chosen priority and its routing key, in one atomic step, and resets it for a new run: status pending, attempts 0, no scheduled_for, no TTL (a dead-lettered document would otherwise still expire after 7 days, and its exhausted attempts would dead-letter it again at once). It goes behind the jobs already waiting. A job already in that list, and nowhere else, keeps its position.

Refused (exit 8) while a worker holds the job (in processing) unless --force (it may then run twice), for a document that is not a job (fix it with job fix --requeue), and for a completed job in no queue unless --force. Unknown id: exit 3.`;
  static override examples = [
    '<%= config.bin %> job requeue 7e6d5c4b-3a29-4180-9f7e-6d5c4b3a2918',
    '<%= config.bin %> job requeue 7e6d5c4b-3a29-4180-9f7e-6d5c4b3a2918 --to high --dry-run',
    '<%= config.bin %> job requeue c0ffee00-1234-4abc-8def-0123456789ab --force --json',
  ];

  static override args = jobIdArgs;

  static override flags = {
    to: Flags.string({
      options: [...PRIORITIES, 'original'],
      default: 'original',
      summary: "Priority to requeue at (original: the document's)",
    }),
    force: Flags.boolean({
      summary: 'Requeue it even while a worker holds it, or run a completed job again',
    }),
    'dry-run': destructiveFlags['dry-run'],
  };

  async run(): Promise<RequeueResult> {
    const { flags } = this;
    const id = assertLookupId(this.args.id);
    assertPrefix(flags.prefix);
    const result = await this.withProgress('Requeueing the job', async () =>
      requeueJob(await this.redis(), flags.prefix, id, {
        to: flags.to as RequeueTarget,
        force: flags.force,
        dryRun: flags['dry-run'],
      }),
    );
    this.print(render(result));
    return result;
  }
}

function render(result: RequeueResult): string {
  const lines: string[] = [];
  const from = result.from.length === 0 ? 'no queue' : result.from.map((p) => p.key).join(', ');
  if (!result.moved)
    lines.push(`job ${quoteId(result.id)} is already in ${result.to} and keeps its position`);
  else lines.push(`job ${quoteId(result.id)}: ${from} → ${result.to}`);
  for (const change of result.changes) {
    lines.push(`  ${change.field}: ${change.before ?? '(absent)'} → ${change.after ?? '(absent)'}`);
  }
  if (result.dry_run) lines.push(color.yellow('dry run: nothing was changed'));
  else if (!result.applied) lines.push('nothing to do: nothing was changed');
  else lines.push(color.green('requeued'));
  return lines.join('\n');
}
