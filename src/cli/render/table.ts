/**
 * Plain aligned columns. The groups table on a TTY is fitted to the terminal
 * (render/groups.ts, cli-table3); pipes get whitespace-separated columns that `awk` can read
 * and that cost nothing to render.
 */
export function columns(rows: readonly (readonly string[])[], gap = 2, visibleLength = (s: string) => s.length): string {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, visibleLength(cell))));
  return rows
    .map((row) => row.map((cell, i) => (i === row.length - 1 ? cell : cell + ' '.repeat((widths[i] ?? 0) - visibleLength(cell) + gap))).join('').trimEnd())
    .join('\n');
}

// eslint-disable-next-line no-control-regex
const ANSI = /\u001b\[[0-9;]*m/g;
export const stripAnsi = (s: string) => s.replace(ANSI, '');
