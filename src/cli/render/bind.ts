import type { ChalkInstance } from 'chalk';
import type { ActionResult } from '../../apply/binder.js';
import type { SubjectOutcome } from '../../exec/executor.js';

/**
 * One action of `bind`/`unbind` JSON (schemaVersion 1): bdf, from, to, status, reason (+ warnings);
 * `code` is a stable word for a refusal or failure (null when fine).
 */
export function actionJson(a: ActionResult) {
  return { bdf: a.bdf, from: a.from, to: a.to, status: a.status, code: a.code, reason: a.reason, warnings: [...a.warnings] };
}

/** After a failed change: every subject the run touched, and whether it was put back. */
export function rollbackJson(subjects: readonly SubjectOutcome[]) {
  return {
    complete: subjects.every((x) => x.status === 'rolled-back'),
    subjects: subjects.map((x) => ({ kind: x.kind, id: x.id, status: x.status, left: x.left, fix: x.fix })),
  };
}

export function bindDocument(dryRun: boolean, changed: boolean, actions: readonly ActionResult[]) {
  return { dryRun, changed, actions: actions.map(actionJson) };
}

/** `0000:01:00.0: e1000e -> vfio-pci (bound)`, one line per device. */
export function renderActions(actions: readonly ActionResult[], dryRun: boolean, changed: boolean, c: ChalkInstance): string {
  const paint = (status: string) =>
    status === 'bound' || status === 'unbound' ? c.green(status)
    : status === 'planned' ? c.cyan(status)
    : status === 'unchanged' ? c.dim(status)
    : status === 'rolled-back' ? c.yellow(status)
    : c.red(status);
  const lines = actions.map((a) => `${a.bdf}: ${a.from ?? '(none)'} -> ${a.to ?? '(kernel choice)'} (${paint(a.status)}${a.reason ? `: ${a.reason}` : ''})`);
  if (actions.length === 0) lines.push('nothing selected');
  else if (dryRun && actions.some((a) => a.status === 'refused')) lines.push('dry run: nothing written; a real run would be refused');
  else if (dryRun) lines.push(changed ? 'dry run: nothing written; a real run would change the devices marked planned' : 'dry run: nothing to change');
  else if (!changed && actions.every((a) => a.status === 'unchanged')) lines.push('nothing to change');
  return lines.join('\n');
}
