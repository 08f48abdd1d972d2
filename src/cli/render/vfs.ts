import type { ChalkInstance } from 'chalk';
import type { ActionResult } from '../../apply/binder.js';
import type { SubjectOutcome } from '../../exec/executor.js';
import { actionJson, renderActions, rollbackJson } from './bind.js';

export interface VfsReport {
  readonly dryRun: boolean;
  readonly changed: boolean;
  readonly pf: string;
  readonly totalVfs: number | null;
  readonly numVfsBefore: number;
  readonly numVfs: number | null;
  readonly writes: readonly { path: string; value: string }[];
  readonly vfs: readonly { bdf: string; driver: string | null; iommuGroup: number | null }[];
  readonly actions: readonly ActionResult[];
  readonly rollback: readonly SubjectOutcome[];
}

/** `vfs --json` (schemaVersion 1); `rollback` only after a failed change. */
export function vfsJson(r: VfsReport) {
  return {
    dryRun: r.dryRun, changed: r.changed, pf: r.pf, totalVfs: r.totalVfs, numVfsBefore: r.numVfsBefore, numVfs: r.numVfs,
    writes: r.writes, vfs: r.vfs, actions: r.actions.map(actionJson),
    ...(r.rollback.length ? { rollback: rollbackJson(r.rollback) } : {}),
  };
}

export function renderVfs(r: VfsReport, c: ChalkInstance): string {
  const lines: string[] = [];
  for (const w of r.writes) lines.push(`${r.dryRun ? 'would write' : 'wrote'} ${JSON.stringify(w.value)} > ${w.path}`);
  lines.push(`${r.pf}: ${r.numVfsBefore} -> ${r.numVfs ?? '?'} VFs (of ${r.totalVfs ?? '?'})`);
  for (const v of r.vfs) lines.push(`  ${v.bdf} ${v.driver ?? '(no driver)'} group ${v.iommuGroup ?? '-'}`);
  if (r.actions.length) lines.push(renderActions(r.actions, r.dryRun, r.changed, c));
  for (const x of r.rollback) lines.push(x.status === 'rolled-back' ? `${x.kind} ${x.id}: put back` : `${x.kind} ${x.id}: ${c.red('NOT put back')}: ${x.left}; fix: ${x.fix}`);
  return lines.join('\n');
}
