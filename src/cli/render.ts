/** Tables and colour for human output. Colour is off with NO_COLOR or when stdout is not a TTY. */
import chalk, { Chalk } from 'chalk';
import Table from 'cli-table3';

export const color: typeof chalk =
  process.env.NO_COLOR !== undefined || !process.stdout.isTTY ? new Chalk({ level: 0 }) : chalk;

export function table(head: string[], rows: Array<Array<string | number>>): string {
  const t = new Table({
    head: head.map((h) => color.bold(h)),
    style: { head: [], border: [], compact: true },
  });
  for (const row of rows) t.push(row.map(String));
  return t.toString();
}

/** A count as the reports print it: `1,234,567`. */
export function formatCount(value: number): string {
  return value.toLocaleString('en-US');
}
