import { BananasCommand } from '../../cli/base-command.js';
import { confirmDestructive } from '../../cli/confirm.js';
import { color, table } from '../../cli/render.js';
import { destructiveFlags, jobIdArgs } from '../../cli/shared-flags.js';
import { assertPrefix } from '../../core/keys.js';
import { assertLookupId, deleteJob, quoteId, type DeleteResult } from '../../inspector/job.js';

export default class JobDelete extends BananasCommand<typeof JobDelete> {
  static override summary = 'Delete one job and every reference to it';
  static override description = `Deletes the document, the result hash and every occurrence of the id in the ready lists, processing (with its lease and owner: a worker still running it then writes nothing), the scheduled set and the dead-letter queue, in one atomic step, and only if nothing changed since they were listed. Works for orphaned ids (no document), corrupt documents and stubs. Unknown id: exit 3.

Asks for confirmation; without a terminal on stdin, --yes is required. --dry-run lists what would be deleted.`;
  static override examples = [
    '<%= config.bin %> job delete 4b5c6d7e-8f90-4a1b-8c2d-3e4f5a6b7c8d --dry-run',
    '<%= config.bin %> job delete 4b5c6d7e-8f90-4a1b-8c2d-3e4f5a6b7c8d --yes --json',
    "<%= config.bin %> job delete '' --yes",
  ];

  static override args = jobIdArgs;

  static override flags = { ...destructiveFlags };

  async run(): Promise<DeleteResult> {
    const { flags } = this;
    const id = assertLookupId(this.args.id);
    assertPrefix(flags.prefix);
    const result = await this.withProgress('Looking up the job', async (progress) =>
      deleteJob(await this.redis(), flags.prefix, id, {
        dryRun: flags['dry-run'],
        confirm: async (plan) => {
          if (flags.yes) return;
          progress.stop();
          this.print(render(plan));
          const items = `${plan.removed.length} item${plan.removed.length === 1 ? '' : 's'}`;
          await confirmDestructive(`Delete job ${quoteId(id)} (the ${items} listed above)?`, { yes: false });
        },
      }),
    );
    this.print(render(result));
    return result;
  }
}

function render(result: DeleteResult): string {
  const verb = result.applied ? 'deleted' : 'would delete';
  const rows = result.removed.map((r) => [r.kind, r.key, r.count]);
  const lines = [`job ${quoteId(result.id)}: ${verb}`, table(['what', 'key', 'count'], rows)];
  if (result.dry_run) lines.push(color.yellow('dry run: nothing was changed'));
  return lines.join('\n');
}
