/** Flags and arguments shared by several commands. */
import { Args, Flags } from '@oclif/core';
import { DEFAULT_WINDOW_MINUTES } from '../inspector/stats.js';
import { durationFlag } from './flags.js';

/** Flags of the commands that change state. */
export const destructiveFlags = {
  yes: Flags.boolean({
    char: 'y',
    summary: 'Do not ask for confirmation (needed when stdin is not a terminal)',
  }),
  'dry-run': Flags.boolean({ summary: 'Show exactly what would change, change nothing' }),
};

/** The job id argument of the `job` commands. */
export const jobIdArgs = {
  id: Args.string({ description: "Job id ('' for the original cron job)", required: true }),
};

/** `--window` of the commands that report the error rate (pass it to windowMinutesFromMs). */
export const errorRateWindowFlag = durationFlag({
  default: DEFAULT_WINDOW_MINUTES * 60_000,
  defaultHelp: async () => '5m',
  summary: 'Error-rate window, whole minutes up to 2h',
});
