import { Args, Flags } from '@oclif/core';
import { BananasCommand } from '../../cli/base-command.js';
import { color, formatCount, table } from '../../cli/render.js';
import { assertPrefix, Keys } from '../../core/keys.js';
import { MAX_PEEK_LIMIT, peekQueue, resolveQueue, type PeekResult } from '../../inspector/stats.js';

export default class QueuePeek extends BananasCommand<typeof QueuePeek> {
  static override summary = 'Show the jobs at the head of a queue (the next ones out)';
  static override description = `<queue> is high, normal or low (the default route), <routing-key>:<priority> (e.g. gpu:high), processing, dead (or dlq), scheduled, or a full key such as bananas:route:default:queue:high.

Jobs are listed next-out first: the right end of a list (where consumers take from), the lowest score of the scheduled set. Each job's document is read and checked: missing documents, corrupt documents and the original's error stubs are marked. Nothing is changed.`;

  static override examples = [
    '<%= config.bin %> queue peek normal',
    '<%= config.bin %> queue peek gpu:high --limit 50',
    '<%= config.bin %> queue peek dead --json',
  ];

  static override args = {
    queue: Args.string({ description: 'Queue to look at', required: true }),
  };

  static override flags = {
    limit: Flags.integer({
      char: 'n',
      min: 1,
      max: MAX_PEEK_LIMIT,
      default: 10,
      summary: `How many jobs to show (at most ${MAX_PEEK_LIMIT})`,
    }),
  };

  async run(): Promise<PeekResult> {
    const { flags } = this;
    assertPrefix(flags.prefix);
    const keys = new Keys(flags.prefix);
    const target = resolveQueue(keys, this.args.queue);
    const result = await peekQueue(await this.redis(), keys, target, flags.limit);
    this.print(renderPeek(result));
    return result;
  }
}

function renderPeek(result: PeekResult): string {
  const header = `${color.bold(result.queue)} (${result.key}): ${formatCount(result.length)} ${result.kind === 'scheduled' ? 'scheduled' : 'entries'}${result.length > result.jobs.length ? `; the next ${result.jobs.length}, next out first` : ''}`;
  if (result.jobs.length === 0) return `${header}\n(empty)`;
  const extra = result.kind === 'scheduled' ? ['Run at'] : result.kind === 'processing' ? ['Lease'] : [];
  const rows = result.jobs.map((job) => {
    const state =
      job.document === 'ok'
        ? (job.problem ?? job.status ?? '')
        : color.red(`${job.document}: ${job.problem ?? ''}`);
    const cells: string[] = [
      String(job.position),
      job.id === '' ? color.yellow('(empty id)') : job.id,
      job.name ?? '-',
      job.priority ?? '-',
      job.attempts === null ? '-' : `${job.attempts}/${job.max_retries}`,
      job.created_at ?? '-',
      state,
    ];
    if (result.kind === 'scheduled') cells.push(job.run_at ?? '-');
    if (result.kind === 'processing') {
      cells.push(
        job.lease_expires_at === null || job.lease_expires_at === undefined
          ? color.yellow('none')
          : Date.parse(job.lease_expires_at) < Date.now()
            ? color.yellow(`expired ${job.lease_expires_at}`)
            : `until ${job.lease_expires_at} (${job.lease_owner ?? '?'})`,
      );
    }
    return cells;
  });
  return `${header}\n${table(['#', 'ID', 'Name', 'Priority', 'Attempts', 'Created', 'Status', ...extra], rows)}`;
}
