import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Flags } from '@oclif/core';
import { BananasCommand } from '../../cli/base-command.js';
import { confirmDestructive } from '../../cli/confirm.js';
import { readJsonArgument } from '../../cli/input.js';
import { startProgress } from '../../cli/progress.js';
import { color } from '../../cli/render.js';
import { destructiveFlags, jobIdArgs } from '../../cli/shared-flags.js';
import { ConflictError, InvalidJobError, UsageError } from '../../core/errors.js';
import { assertPrefix, PRIORITIES } from '../../core/keys.js';
import {
  assertLookupId,
  fixJob,
  parseAssignments,
  quoteId,
  SETTABLE_FIELDS,
  validateReplacement,
  type FieldChange,
  type FixResult,
  type FixSource,
  type RequeueTarget,
} from '../../inspector/job.js';

export default class JobFix extends BananasCommand<typeof JobFix> {
  static override summary = "Fix a job's document (in $EDITOR, with --set or --from), optionally requeue it";
  static override description = `The runbook's "fix the JSON and re-enqueue", made safe. The new document must be a valid job with the same id; it is saved only if nobody changed the stored one meanwhile (compare-and-set on the exact bytes read), with the payload and unknown fields kept byte for byte unless you changed them; updated_at is set to now. A corrupt document or a stub can be fixed this way.

Without --set or --from the document opens in $VISUAL / $EDITOR (one field per line); save and quit to apply. If the edit is not a valid job nothing is saved and your edit is kept in a temporary file for --from.

--requeue then moves THAT id (not the oldest, as the runbook's RPOPLPUSH did) out of the dead-letter queue, or wherever it is, to its ready list in the same atomic step, resetting it for a new run (status pending, attempts 0, no scheduled_for, no TTL). A job a worker holds (in processing) is refused unless --force.

--dry-run prints the changes and saves nothing. Without a terminal on stdin, --yes is required.`;
  static override examples = [
    '<%= config.bin %> job fix 7e6d5c4b-3a29-4180-9f7e-6d5c4b3a2918 --requeue',
    '<%= config.bin %> job fix 7e6d5c4b-3a29-4180-9f7e-6d5c4b3a2918 --set max_retries=5 --set priority=high --dry-run',
    `<%= config.bin %> job fix 7e6d5c4b-3a29-4180-9f7e-6d5c4b3a2918 --set 'payload={"amount":1999}' --requeue --to high --yes`,
    '<%= config.bin %> job fix 6c7d8e9f-0a1b-4c2d-9e3f-4a5b6c7d8e9f --from fixed.json --requeue --yes --json',
  ];

  static override args = jobIdArgs;

  static override flags = {
    set: Flags.string({
      char: 's',
      multiple: true,
      multipleNonGreedy: true,
      summary: `Set a field: field=value (repeatable). Fields: ${SETTABLE_FIELDS.join(', ')}; payload=<json> or payload=@file`,
      exclusive: ['from'],
    }),
    from: Flags.string({
      summary: 'Replace the document with this file (a full job document; - reads stdin)',
      exclusive: ['set'],
    }),
    requeue: Flags.boolean({ summary: 'Also move the job to its ready list, reset for a new run' }),
    to: Flags.string({
      options: [...PRIORITIES, 'original'],
      summary: "With --requeue: the priority to requeue at [default: original, the document's]",
      dependsOn: ['requeue'],
    }),
    force: Flags.boolean({ summary: 'Fix it even while a worker holds it (in processing)' }),
    ...destructiveFlags,
  };

  async run(): Promise<FixResult> {
    const { flags } = this;
    const id = assertLookupId(this.args.id);
    assertPrefix(flags.prefix);
    const json = this.jsonEnabled();
    // Bad input is a usage error (exit 2) whether or not Redis is reachable: check it before connecting.
    const source = this.source(id, json);
    const requeue = flags.requeue ? { to: (flags.to ?? 'original') as RequeueTarget } : undefined;
    const progress = startProgress('Reading the job', { json });
    let shown = false;
    let result: FixResult;
    try {
      const input = source.source;
      // The spinner must not draw over the editor.
      const how: FixSource =
        input.kind === 'edit'
          ? {
              kind: 'edit',
              edit: async (text) => {
                progress.stop();
                return input.edit(text);
              },
            }
          : input;
      result = await fixJob(await this.redis(), flags.prefix, id, how, {
        requeue,
        force: flags.force,
        dryRun: flags['dry-run'],
        confirm: async (plan) => {
          progress.stop();
          this.print(renderFix(plan));
          shown = true;
          const move = plan.requeue ? ` and requeue it on ${plan.requeue.to}` : '';
          await confirmDestructive(`Save the fixed document of job ${quoteId(id)}${move}?`, {
            yes: flags.yes,
          });
        },
      });
    } catch (err) {
      const file = source.editedFile();
      if (file !== undefined && (err instanceof InvalidJobError || err instanceof ConflictError)) {
        // Keep the operator's work: the edit can be applied again with --from.
        const note = ` (your edit is kept in ${file}: fix it, then job fix ${quoteId(id)} --from ${file})`;
        throw err instanceof InvalidJobError
          ? new InvalidJobError(err.message + note)
          : new ConflictError(err.message + note);
      }
      source.cleanup();
      throw err;
    } finally {
      progress.stop();
    }
    source.cleanup();
    if (!shown) this.print(renderFix(result));
    this.print(outcome(result));
    return result;
  }

  /** Where the new document comes from; validated before Redis is touched. */
  private source(
    id: string,
    json: boolean,
  ): { source: FixSource; editedFile: () => string | undefined; cleanup: () => void } {
    const { flags } = this;
    const none = { editedFile: () => undefined, cleanup: () => undefined };
    if (flags.set !== undefined) {
      const items = flags.set.map((item) => {
        const m = /^payload=(@.*)$/s.exec(item);
        return m ? `payload=${readJsonArgument(m[1] as string, '--set payload')}` : item;
      });
      return { source: { kind: 'set', assignments: parseAssignments(items) }, ...none };
    }
    if (flags.from !== undefined) {
      const label = flags.from === '-' ? '--from - (stdin)' : `--from ${flags.from}`;
      let text: string;
      try {
        text = readFileSync(flags.from === '-' ? 0 : flags.from, 'utf8');
      } catch (err) {
        throw new UsageError(
          `${label}: cannot read it: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
        );
      }
      validateReplacement(text, id, label);
      return { source: { kind: 'document', text, label }, ...none };
    }
    const editor = process.env.VISUAL || process.env.EDITOR || (process.stdin.isTTY ? 'vi' : undefined);
    if (editor === undefined) {
      throw new UsageError(
        'nothing to change: give --set field=value or --from <file>, or set EDITOR (stdin is not a terminal, so no editor is started by default)',
      );
    }
    let dir: string | undefined;
    let file: string | undefined;
    let kept = false;
    const edit = async (text: string): Promise<string> => {
      dir = mkdtempSync(join(tmpdir(), 'bananas-fix-'));
      file = join(dir, 'job.json');
      // The payload may hold personal data: only this user may read the file.
      writeFileSync(file, text, { mode: 0o600 });
      const run = spawnSync('sh', ['-c', `${editor} "$1"`, 'sh', file], { stdio: [0, json ? 2 : 1, 2] });
      if (run.error || run.status !== 0) {
        const why = run.error
          ? run.error.message
          : run.signal
            ? `signal ${run.signal}`
            : `status ${run.status}`;
        throw new UsageError(`the editor (${editor}) failed (${why}); nothing was changed`);
      }
      const edited = readFileSync(file, 'utf8');
      kept = edited !== text;
      return edited;
    };
    return {
      source: { kind: 'edit', edit },
      editedFile: () => (kept ? file : undefined),
      cleanup: () => {
        if (dir) rmSync(dir, { recursive: true, force: true });
      },
    };
  }
}

function renderChanges(changes: FieldChange[]): string[] {
  const lines: string[] = [];
  for (const change of changes) {
    if (change.before !== null) lines.push(color.red(`  - ${change.field}: ${change.before}`));
    if (change.after !== null) lines.push(color.green(`  + ${change.field}: ${change.after}`));
  }
  return lines;
}

function renderFix(result: FixResult): string {
  const lines: string[] = [];
  if (result.changes.length === 0) lines.push(`job ${quoteId(result.id)}: the document is unchanged`);
  else {
    lines.push(
      `job ${quoteId(result.id)}: ${result.changes.length} field${result.changes.length === 1 ? '' : 's'} changed`,
    );
    lines.push(...renderChanges(result.changes));
  }
  const move = result.requeue;
  if (move) {
    if (!move.moved) lines.push(`requeue: already in ${move.to}, keeps its position`);
    else {
      const from = move.removed.map((r) => r.key).filter((key, i, all) => all.indexOf(key) === i);
      lines.push(`requeue: to ${move.to}${from.length > 0 ? ` (out of ${from.join(', ')})` : ''}`);
    }
  }
  for (const warning of result.warnings) lines.push(color.yellow(`warning: ${warning}`));
  return lines.join('\n');
}

function outcome(result: FixResult): string {
  if (result.dry_run) return color.yellow('dry run: nothing was changed');
  if (!result.applied) return 'nothing to do: nothing was changed';
  const ttl = result.ttl === 'removed' ? ', no TTL' : '';
  return color.green(
    `saved ${result.key}${ttl}${result.requeue?.moved ? `; requeued on ${result.requeue.to}` : ''}`,
  );
}
