import { Flags } from '@oclif/core';
import { BananasCommand } from '../../cli/base-command.js';
import { confirmDestructive } from '../../cli/confirm.js';
import { durationFlag, positiveIntFlag } from '../../cli/flags.js';
import { startProgress } from '../../cli/progress.js';
import { color, formatCount, table } from '../../cli/render.js';
import { destructiveFlags } from '../../cli/shared-flags.js';
import { UsageError } from '../../core/errors.js';
import { assertPrefix } from '../../core/keys.js';
import {
  assertRequeueOptions,
  requeueDeadLetters,
  type RequeueOptions,
  type RequeueResult,
  type RequeueTarget,
} from '../../inspector/dlq.js';

export default class DlqRequeue extends BananasCommand<typeof DlqRequeue> {
  static override summary = 'Move dead-letter jobs back to a ready queue, made runnable again';
  static override description =
    'Each job requeued gets attempts 0, status pending, no TTL and no scheduled_for, keeps its routing key, and goes to its original priority (or --to). Jobs move oldest first in atomic batches: a job moves only if it is still in the dead-letter queue with the document that was read, so Ctrl-C or a crash leaves every job in exactly one place. Stubs, corrupt and missing documents stay in the dead-letter queue and are counted. --id moves exactly those ids, wherever they are.';
  static override examples = [
    '<%= config.bin %> dlq requeue --id 7e6d5c4b-3a29-4180-9f7e-6d5c4b3a2918',
    '<%= config.bin %> dlq requeue --name charge_card --grep "card declined" --dry-run',
    '<%= config.bin %> dlq requeue --all --to low --yes --json',
    '<%= config.bin %> dlq requeue --since 1h --limit 100 --yes',
  ];

  static override flags = {
    id: Flags.string({ multiple: true, summary: 'Requeue exactly this job id (repeat for several)' }),
    all: Flags.boolean({ summary: 'Requeue every job in the dead-letter queue' }),
    name: Flags.string({ multiple: true, summary: 'Only jobs with this name (repeat for several)' }),
    grep: Flags.string({ summary: 'Only jobs whose error contains this text (case-insensitive)' }),
    since: durationFlag({ summary: 'Only jobs that failed within this long (e.g. 30m, 24h)' }),
    to: Flags.string({
      options: ['original', 'high', 'normal', 'low'],
      default: 'original',
      summary: 'Priority queue to requeue to (original: each job keeps its priority)',
    }),
    limit: positiveIntFlag({ summary: 'Requeue at most this many jobs (oldest first)' }),
    ...destructiveFlags,
  };

  async run(): Promise<RequeueResult> {
    const { flags } = this;
    const filtered = flags.name !== undefined || flags.grep !== undefined || flags.since !== undefined;
    if (flags.id && (flags.all || filtered || flags.limit !== undefined)) {
      throw new UsageError('--id cannot be combined with --all, --name, --grep, --since or --limit');
    }
    if (flags.all && filtered) {
      throw new UsageError(
        '--all cannot be combined with --name, --grep or --since (the filters alone select jobs)',
      );
    }
    if (!flags.id && !flags.all && !filtered) {
      throw new UsageError('say what to requeue: --id <id>, --all, or --name/--grep/--since');
    }
    const options: RequeueOptions = {
      selection: flags.id
        ? { ids: flags.id }
        : flags.all
          ? { all: true }
          : { filter: { names: flags.name, grep: flags.grep, sinceMs: flags.since } },
      to: flags.to as RequeueTarget,
      limit: flags.limit,
      dryRun: flags['dry-run'],
    };
    assertPrefix(flags.prefix);
    assertRequeueOptions(options);
    const redis = await this.redis();
    const progress = startProgress('Requeueing dead-letter jobs', { json: this.jsonEnabled() });
    return this.runInterruptible(
      (signal) =>
        requeueDeadLetters(redis, flags.prefix, {
          ...options,
          confirm: (question) => confirmDestructive(question, { yes: flags.yes }),
          signal,
          onProgress: ({ examined, total }) => progress.update(examined, total),
        }),
      { progress, render },
    );
  }
}

function render(result: RequeueResult): string {
  const verb = result.dry_run ? 'Would requeue' : 'Requeued';
  const lines = [
    `${verb} ${formatCount(result.requeued)} job${result.requeued === 1 ? '' : 's'} from ${result.dead_key}.`,
  ];
  if (result.queues.length > 0) {
    lines.push(
      table(
        ['QUEUE', 'JOBS'],
        result.queues.map((q) => [q.queue, formatCount(q.count)]),
      ),
    );
  }
  if (result.dry_run && result.ids.length > 0) {
    const shown = result.ids.slice(0, 20);
    const more = result.requeued - shown.length;
    lines.push(`Ids (oldest first): ${shown.join(', ')}${more > 0 ? ` and ${formatCount(more)} more` : ''}`);
  }
  const left = [
    result.corrupt ? `${formatCount(result.corrupt)} corrupt` : '',
    result.stub ? `${formatCount(result.stub)} stub${result.stub === 1 ? '' : 's'}` : '',
    result.missing_document ? `${formatCount(result.missing_document)} without a document` : '',
    result.changed ? `${formatCount(result.changed)} changed meanwhile` : '',
    result.duplicate
      ? `${formatCount(result.duplicate)} duplicate entr${result.duplicate === 1 ? 'y' : 'ies'}`
      : '',
  ].filter(Boolean);
  if (left.length > 0) {
    lines.push(
      color.yellow(`Left in the dead-letter queue: ${left.join(', ')} (see \`bananas dlq inspect\`).`),
    );
  }
  if (result.not_matching > 0) lines.push(`${formatCount(result.not_matching)} other entries did not match.`);
  if (result.gone > 0) {
    // Another sweep's moves shift the positions this one reads: it may have passed over some entries.
    lines.push(`${formatCount(result.gone)} were moved by someone else meanwhile.`);
  }
  if (result.interrupted)
    lines.push(color.yellow('Interrupted: the rest was not examined (every job is in exactly one place).'));
  return lines.join('\n');
}
