/** Flags shared by destructive commands. */
import { Flags } from '@oclif/core';

export const destructiveFlags = {
  yes: Flags.boolean({
    char: 'y',
    summary: 'Do not ask for confirmation (needed when stdin is not a terminal)',
  }),
  'dry-run': Flags.boolean({ summary: 'Show exactly what would change, change nothing' }),
};
