import { BananasCommand } from '../../cli/base-command.js';
import { positiveIntFlag } from '../../cli/flags.js';
import { color, table } from '../../cli/render.js';
import { formatDuration } from '../../core/duration.js';
import { assertPrefix } from '../../core/keys.js';
import { listProcessing, type ProcessingEntry, type ProcessingListing } from '../../inspector/processing.js';

export default class ProcessingList extends BananasCommand<typeof ProcessingList> {
  static override summary = 'List the jobs being worked on: owner, lease, age, whether the owner is alive';
  static override description = `Reads the processing list in pages, oldest entries first. For each job: the worker holding its lease and whether that worker is still registered (its heartbeat keeps worker:<id> alive), the lease deadline (expired leases are returned to their queue by any running bananas worker within a second), and the time since the document last changed (enqueue or last retry). Ids without a lease were left by an original worker or a crash: see processing recover --include-unleased.

Counts cover the whole list; at most --limit entries are listed.`;
  static override examples = [
    '<%= config.bin %> processing list',
    '<%= config.bin %> processing list --limit 20',
    `<%= config.bin %> processing list --json | jq '.entries[] | select(.lease != "live") | .id'`,
  ];

  static override flags = {
    limit: positiveIntFlag({ summary: 'List at most this many entries (counts cover all)', default: 1000 }),
  };

  async run(): Promise<ProcessingListing> {
    const { flags } = this;
    assertPrefix(flags.prefix);
    const listing = await this.withProgress('Reading processing', async (progress) =>
      listProcessing(await this.redis(), flags.prefix, {
        limit: flags.limit,
        onProgress: (done, total) => progress.update(done, total),
      }),
    );
    this.print(render(listing));
    return listing;
  }
}

function render(listing: ProcessingListing): string {
  const { counts } = listing;
  if (listing.total === 0) return `Nothing in processing (${listing.key}).`;
  const rows = listing.entries.map((e) => [
    e.id,
    e.name ?? color.red(e.document === 'missing' ? '(no document)' : `(${e.document.replace(/_/g, ' ')})`),
    ownerCell(e),
    leaseCell(e),
    e.age_ms === null ? '-' : formatDuration(Math.max(0, e.age_ms)),
  ]);
  const lines = [table(['ID', 'NAME', 'OWNER', 'LEASE', 'AGE'], rows)];
  if (listing.truncated) lines.push(`… ${listing.total - listing.entries.length} more not listed (--limit).`);
  const summary = [
    `${listing.total} in processing`,
    `${counts.lease_live} leased`,
    counts.lease_expired > 0 ? color.yellow(`${counts.lease_expired} lease expired`) : '0 lease expired',
    counts.no_lease > 0 ? color.yellow(`${counts.no_lease} without lease`) : '0 without lease',
    counts.owner_dead > 0 ? color.red(`${counts.owner_dead} owner gone`) : '0 owner gone',
  ];
  lines.push(summary.join(', '));
  if (counts.lease_expired > 0 || counts.no_lease > 0 || counts.owner_dead > 0) {
    lines.push(
      'Stuck jobs: bananas processing recover --dry-run (add --older-than 10m --include-unleased for ids without lease).',
    );
  }
  return lines.join('\n');
}

function ownerCell(e: ProcessingEntry): string {
  if (e.owner === null) return color.dim('-');
  return e.owner_alive ? e.owner : `${e.owner} ${color.red('(gone)')}`;
}

function leaseCell(e: ProcessingEntry): string {
  if (e.lease === 'none') return color.yellow('none');
  const remaining = e.lease_remaining_ms ?? 0;
  if (e.lease === 'expired') return color.red(`expired ${formatDuration(-remaining)} ago`);
  return `${formatDuration(remaining)} left`;
}
