import { existsSync } from 'node:fs';
import { Flags } from '@oclif/core';
import { BananasCommand } from '../../cli/base-command.js';
import { confirmDestructive } from '../../cli/confirm.js';
import { positiveIntFlag } from '../../cli/flags.js';
import { startProgress, type Progress } from '../../cli/progress.js';
import { color, formatCount, table } from '../../cli/render.js';
import { destructiveFlags } from '../../cli/shared-flags.js';
import { ExitCode } from '../../cli/exit-codes.js';
import { UsageError } from '../../core/errors.js';
import { assertPrefix } from '../../core/keys.js';
import {
  DEFAULT_SAMPLE_SIZE,
  REPAIR_ACTIONS,
  SCAN_CLASSES,
  scanCorrupt,
  type RepairAction,
  type RepairPlanSummary,
  type SampleItem,
  type ScanClass,
  type ScanReport,
} from '../../inspector/scan.js';

const CLASS_LABELS: Record<ScanClass, [label: string, meaning: string]> = {
  invalid_json: ['unparseable JSON', 'the document is not JSON (or not UTF-8)'],
  not_a_job: ['not a job', 'JSON, but not a job document (or the key is not a string)'],
  stub: ['error stub', 'the original worker replaced the job with an error stub'],
  empty_id: ['empty id', 'the key <prefix>job: (the original cron scheduler wrote it)'],
  missing_document: ['id without document', 'a list or set references an id whose document is missing'],
  orphan: ['orphan', 'a document without TTL that nothing references: it never runs'],
  expired_lease: ['expired lease', 'in processing, lease expired (no bananas worker is recovering it)'],
  missing_lease: ['no lease', 'in processing without lease (an original worker, or a crash)'],
  duplicate: ['in two places', 'the id is referenced more than once: it can run twice'],
};

const ACTION_LABELS: Record<RepairAction, string> = {
  remove_reference: 'remove dangling reference',
  dead_letter: 'corrupt document → dead-letter queue',
  return_to_queue: 'expired lease → back to its queue',
  remove_duplicate: 'remove extra reference',
  requeue: 'orphan → back in line',
};

export default class ScanCorrupt extends BananasCommand<typeof ScanCorrupt> {
  static override summary = 'Find (and with --repair, fix) corrupt documents and inconsistent queues';
  static override description = `Reads every job document (SCAN, never KEYS) and pages through every ready list, processing, the dead-letter list and the scheduled set. Reports, per class, a count and a sample of ids: unparseable JSON, not a job, error stubs of the original worker, the empty-id key, ids whose document is missing, orphans (documents without TTL that nothing references), processing entries with an expired or no lease, ids referenced in two places, and queue keys holding the wrong kind of value. Exit 7 when anything is found, 0 when clean.

While it runs, the scan keeps a temporary index of queued ids in Redis (<prefix>scan:<run>:*, about 100 bytes per queued id, with a TTL, deleted at the end); it refuses to start when that would take Redis near its maxmemory. Findings that workers moving jobs can fake are confirmed by a second look; documents updated in the 5 minutes before the scan are never called orphans.

--repair first writes a backup (JSON Lines: every key it will change, with its value and TTL), then fixes, each step atomic and re-checked when it runs:
- corrupt / not-a-job / stub documents a worker would take (ready, scheduled, processing without live lease) → their id goes to the dead-letter queue; the document is never changed or deleted
- ids without document → the dangling reference is removed (also from the dead-letter queue: nothing is left to requeue or inspect); not under a live lease
- orphans → back on their ready list (or the scheduled set, if scheduled for later); finished (completed/failed) ones are left
- expired leases → back to the head of their queue, as the workers' lease recovery does
- ids in two places → the most advanced place is kept (processing, then a ready list, then the scheduled set); dead-letter entries are never removed
- processing without lease, empty id → reported only (see processing recover --include-unleased)`;
  static override examples = [
    '<%= config.bin %> scan corrupt',
    '<%= config.bin %> scan corrupt --json | jq .classes.orphan.count',
    '<%= config.bin %> scan corrupt --repair --dry-run',
    '<%= config.bin %> scan corrupt --repair --yes --backup before-repair.jsonl',
  ];

  static override flags = {
    repair: Flags.boolean({ summary: 'Fix what was found (backup first; asks unless --yes)' }),
    backup: Flags.string({
      summary: 'Backup file for --repair [default: bananas-scan-backup-<time>.jsonl]',
      dependsOn: ['repair'],
    }),
    sample: positiveIntFlag({ summary: `Ids shown per class [default: ${DEFAULT_SAMPLE_SIZE}]` }),
    ...destructiveFlags,
  };

  async run(): Promise<ScanReport> {
    const { flags } = this;
    assertPrefix(flags.prefix);
    if (flags.sample !== undefined && flags.sample > 1000)
      throw new UsageError('--sample must be at most 1000');
    if (flags.backup !== undefined && existsSync(flags.backup)) {
      throw new UsageError(`backup file ${flags.backup} already exists: choose another; nothing was changed`);
    }
    const repair = flags.repair === true;
    const dryRun = flags['dry-run'] === true;
    if (repair && !dryRun && !flags.yes && !process.stdin.isTTY) {
      await confirmDestructive('Repair what the scan finds?', { yes: false });
    }
    const json = this.jsonEnabled();
    let progress: Progress | undefined;
    let phase = '';
    const onProgress = (next: string, done: number, total?: number) => {
      if (next !== phase) {
        progress?.stop();
        phase = next;
        progress = startProgress(next, { json });
      }
      progress?.update(done, total);
    };
    let report: ScanReport;
    try {
      report = await scanCorrupt(await this.redis(), flags.prefix, {
        sampleSize: flags.sample,
        onProgress,
        repair: repair
          ? {
              dryRun,
              backupFile: flags.backup,
              confirm: flags.yes
                ? undefined
                : async (plan) => {
                    progress?.stop();
                    phase = '';
                    if (!json) this.log(renderPlan(plan));
                    await confirmDestructive(
                      `Apply these ${plan.total} repairs? (a backup is written first)`,
                      {
                        yes: false,
                      },
                    );
                  },
            }
          : undefined,
      });
    } finally {
      progress?.stop();
    }
    this.print(render(report));
    if (!report.clean) process.exitCode = ExitCode.PROBLEMS_FOUND;
    return report;
  }
}

function renderPlan(plan: RepairPlanSummary): string {
  return table(
    ['REPAIR', 'COUNT'],
    REPAIR_ACTIONS.filter((a) => plan.actions[a] > 0).map((a) => [ACTION_LABELS[a], plan.actions[a]]),
  );
}

function sampleLine(cls: ScanClass, item: SampleItem): string {
  const id = item.id === '' ? '""' : item.id;
  const parts = [id];
  if (item.place) parts.push(`in ${item.place}`);
  if (item.reason && cls !== 'empty_id') parts.push(item.reason);
  if (item.owner !== undefined) parts.push(item.owner === null ? 'no owner' : `owner ${item.owner}`);
  if (item.lease_deadline) parts.push(`lease ended ${item.lease_deadline}`);
  if (item.name)
    parts.push(
      `${item.name} (${item.status === '' ? 'no status' : item.status}, updated ${item.updated_at || '?'})`,
    );
  if (item.places && item.places.length > 0) parts.push(`[${item.places.join(', ')}]`);
  else if (item.places && cls !== 'orphan') parts.push('[referenced nowhere]');
  return `  ${parts.join('  ')}`;
}

function render(report: ScanReport): string {
  const s = report.scanned;
  const lines = [
    `Scanned ${formatCount(s.documents)} documents and ${formatCount(s.ready_entries)} ready (${s.ready_lists} lists), ${formatCount(s.processing_entries)} processing, ${formatCount(s.dead_entries)} dead and ${formatCount(s.scheduled_entries)} scheduled entries in ${(report.duration_ms / 1000).toFixed(1)} s.`,
  ];
  const rows = SCAN_CLASSES.map((cls) => {
    const count = report.classes[cls].count;
    let meaning = CLASS_LABELS[cls][1];
    if (cls === 'missing_document' && count > 0) {
      const p = report.classes.missing_document.by_place;
      meaning += ` (ready ${p.ready}, scheduled ${p.scheduled}, processing ${p.processing}, dead ${p.dead})`;
    }
    return [CLASS_LABELS[cls][0], count > 0 ? color.red(formatCount(count)) : '0', meaning];
  });
  lines.push('', table(['PROBLEM', 'COUNT', 'WHAT IT MEANS'], rows));
  for (const cls of SCAN_CLASSES) {
    const c = report.classes[cls];
    if (c.count === 0) continue;
    lines.push(
      '',
      color.bold(
        `${CLASS_LABELS[cls][0]} (${formatCount(c.count)}${c.sample_truncated ? `, first ${c.sample.length} shown` : ''}):`,
      ),
    );
    for (const item of c.sample) lines.push(sampleLine(cls, item));
  }
  if (report.wrong_type.length > 0) {
    lines.push(
      '',
      color.bold(`Keys holding the wrong kind of value (${report.wrong_type.length}), not scanned:`),
    );
    for (const w of report.wrong_type) lines.push(`  ${w.key}  holds a ${w.type}, expected a ${w.expected}`);
    lines.push(
      color.dim(
        '  Neither the scan nor the repair touches them: look with redis-cli TYPE/DUMP, then rename or delete.',
      ),
    );
  }
  lines.push('');
  if (report.clean) lines.push(color.green('No problems found.'));
  else
    lines.push(
      color.red(`Found ${formatCount(report.problems)} problem${report.problems === 1 ? '' : 's'}.`),
    );
  const repair = report.repair;
  if (!repair) {
    if (!report.clean) lines.push('See what a repair would do: bananas scan corrupt --repair --dry-run');
    return lines.join('\n');
  }
  const planned = REPAIR_ACTIONS.filter((a) => repair.actions[a].planned > 0);
  lines.push('');
  if (planned.length === 0) lines.push('Nothing to repair.');
  else {
    const head = repair.dry_run
      ? ['REPAIR (DRY RUN)', 'WOULD DO']
      : ['REPAIR', 'PLANNED', 'DONE', 'CHANGED MEANWHILE'];
    lines.push(
      table(
        head,
        planned.map((a) => {
          const r = repair.actions[a];
          return repair.dry_run
            ? [ACTION_LABELS[a], r.planned]
            : [ACTION_LABELS[a], r.planned, r.applied, r.changed];
        }),
      ),
    );
    for (const a of planned) {
      const r = repair.actions[a];
      lines.push(color.bold(`${ACTION_LABELS[a]}:`));
      for (const item of r.sample) {
        const id = item.id === '' ? '""' : item.id;
        if (a === 'remove_duplicate')
          lines.push(`  ${id}  kept in ${item.to}; removed from ${item.from.join(', ')}`);
        else if (a === 'remove_reference') lines.push(`  ${id}  removed from ${item.from.join(', ')}`);
        else lines.push(`  ${id}  ${item.from.length > 0 ? item.from.join(', ') : '(nowhere)'} → ${item.to}`);
      }
      if (r.planned > r.sample.length) lines.push(`  … and ${formatCount(r.planned - r.sample.length)} more`);
    }
  }
  if (repair.left.length > 0) {
    lines.push(color.bold('Left as found:'));
    for (const l of repair.left)
      lines.push(`  ${CLASS_LABELS[l.class][0]} (${formatCount(l.count)}): ${l.reason}`);
  }
  if (repair.backup_file) lines.push(`Backup of every key changed: ${repair.backup_file}`);
  if (repair.dry_run) lines.push(color.dim('Dry run: nothing was changed.'));
  return lines.join('\n');
}
