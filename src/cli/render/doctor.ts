import type { ChalkInstance } from 'chalk';
import type { CheckResult } from '../../doctor/checks.js';

/** One line per check, the fix indented below anything that is not PASS. */
export function renderDoctor(checks: readonly CheckResult[], c: ChalkInstance): string {
  const width = Math.max(...checks.map((x) => x.id.length));
  const paint = { PASS: c.green, WARN: c.yellow, FAIL: c.red } as const;
  const lines: string[] = [];
  for (const x of checks) {
    lines.push(`${paint[x.status](x.status)}  ${x.id.padEnd(width)}  ${x.message}`);
    if (x.fix && x.status !== 'PASS') lines.push(`${' '.repeat(width + 8)}fix: ${x.fix}`);
  }
  const count = (s: string) => checks.filter((x) => x.status === s).length;
  lines.push('', `${count('PASS')} passed, ${count('WARN')} warnings, ${count('FAIL')} failed`);
  return lines.join('\n');
}
