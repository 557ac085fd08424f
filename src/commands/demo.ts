import ora from 'ora';
import { BananasCommand } from '../cli/base-command.js';
import { color, table } from '../cli/render.js';
import { runDemo, type DemoReport } from '../inspector/demo.js';

export default class Demo extends BananasCommand<typeof Demo> {
  static override summary = 'See bananas work: a worker processes a mix of jobs on a throwaway Redis';
  static override description = `Starts a private redis-server from PATH on a free port (unless --redis-url or REDIS_URL is given; then it works under its own random prefix and removes its keys), runs a worker with the built-in handlers, enqueues jobs of every priority, a delayed one, a flaky one that succeeds on retry, failing ones and a corrupt document, and prints what happened.`;

  static override examples = ['<%= config.bin %> demo', '<%= config.bin %> demo --json'];

  async run(): Promise<DemoReport> {
    const interactive = process.stderr.isTTY === true && !this.jsonEnabled();
    const spinner = ora({ stream: process.stderr, isEnabled: interactive, isSilent: !interactive });
    spinner.start('Preparing the demo');
    let report: DemoReport;
    try {
      report = await runDemo({
        redisUrl: this.flags['redis-url'],
        prefix: this.flags.prefix,
        onProgress: (text) => {
          spinner.text = text;
          if (!interactive && !this.jsonEnabled()) process.stderr.write(`${text}\n`);
        },
      });
    } finally {
      spinner.stop();
    }
    this.print(render(report));
    return report;
  }
}

function render(report: DemoReport): string {
  const outcome = (o: string) =>
    o === 'completed' ? color.green(o) : o === 'dead-letter' ? color.red(o) : color.yellow(o);
  const rows = report.jobs.map((j) => [
    j.started_order ?? '-',
    j.name,
    j.priority,
    outcome(j.outcome),
    j.attempts,
    truncate(j.result ?? j.error ?? '', 48),
  ]);
  const { totals } = report;
  return [
    '',
    color.bold(
      `bananas demo — ${report.throwaway_redis ? 'throwaway ' : ''}Redis ${report.redis}, prefix ${report.prefix}`,
    ),
    table(['started', 'job', 'priority', 'outcome', 'failed attempts', 'result / error'], rows),
    `${totals.enqueued} jobs: ${totals.completed} completed (${totals.retried} after a retry), ${totals.dead_letter} in the dead-letter queue, in ${(report.duration_ms / 1000).toFixed(1)} s.`,
    'High-priority jobs started first although low ones were queued before them; the corrupt document went',
    'to the dead-letter queue without a retry, its bytes kept as stored.',
    '',
    color.bold('Explore on your own Redis:'),
    `  bananas worker start --demo-handlers --log-format pretty          # a worker with the built-in handlers`,
    `  bananas job enqueue echo --payload '{"hello":"world"}' --priority high`,
    `  bananas job enqueue fail --payload '{"message":"boom"}' --max-retries 2`,
    `  bananas worker start --help                                          # every flag and env variable`,
    '',
  ].join('\n');
}

function truncate(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}
