import { Args, Flags } from '@oclif/core';
import { BananasCommand } from '../../cli/base-command.js';
import { durationFlag } from '../../cli/flags.js';
import { parseTime, readJsonArgument } from '../../cli/input.js';
import { assertPrefix, assertRoutingKey, PRIORITIES, type Priority } from '../../core/keys.js';
import { assertJobId } from '../../core/queue.js';
import { enqueueJob, type EnqueuedJob } from '../../inspector/jobs.js';

export default class JobEnqueue extends BananasCommand<typeof JobEnqueue> {
  static override summary = 'Enqueue a job';
  static override description =
    'Writes the job document and its queue entry in one atomic step. A job whose id already exists is refused (exit 8), never overwritten.';
  static override examples = [
    `<%= config.bin %> job enqueue send_email --payload '{"to":"a@example.com"}' --priority high`,
    '<%= config.bin %> job enqueue transcode --payload @job.json --route gpu --delay 10s',
    '<%= config.bin %> job enqueue report --at 2030-01-02T03:04:05Z --max-retries 5 --json',
  ];

  static override args = {
    name: Args.string({ description: 'Job name (the handler that runs it)', required: true }),
  };

  static override flags = {
    payload: Flags.string({ char: 'p', summary: 'Payload: inline JSON or @file (default: null)' }),
    priority: Flags.string({ options: [...PRIORITIES], default: 'normal', summary: 'Priority' }),
    route: Flags.string({ summary: 'Routing key (1-64 of A-Z a-z 0-9 _ -)' }),
    delay: durationFlag({ summary: 'Run after this delay (e.g. 10s, 5m)', exclusive: ['at'] }),
    at: Flags.string({ summary: 'Run at this time (RFC 3339)', exclusive: ['delay'] }),
    'max-retries': Flags.integer({
      min: 0,
      summary: 'Failed attempts before the dead-letter queue [default: 3]',
    }),
    id: Flags.string({ summary: 'Custom job id (default: a new UUID)' }),
    description: Flags.string({ summary: 'Description' }),
  };

  async run(): Promise<EnqueuedJob> {
    const { flags } = this;
    // Bad input is a usage error (exit 2) whether or not Redis is reachable: check it before connecting.
    const payloadJson =
      flags.payload === undefined ? undefined : readJsonArgument(flags.payload, '--payload');
    const runAt = flags.at === undefined ? undefined : parseTime(flags.at, '--at');
    if (flags.route !== undefined) assertRoutingKey(flags.route);
    if (flags.id !== undefined) assertJobId(flags.id);
    assertPrefix(flags.prefix);
    const job = await enqueueJob(await this.redis(), flags.prefix, this.args.name, {
      payloadJson,
      priority: flags.priority as Priority,
      routingKey: flags.route,
      delayMs: flags.delay,
      runAt,
      maxRetries: flags['max-retries'],
      id: flags.id,
      description: flags.description,
    });
    this.print(job.id);
    return job;
  }
}
