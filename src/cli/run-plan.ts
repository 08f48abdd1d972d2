import { Binder, type ActionResult } from '../apply/binder.js';
import { VfioctlError } from '../errors.js';
import { ExitCode } from '../exit-codes.js';
import type { ActionStatus, Plan } from '../plan/bind-plan.js';
import { execOptions } from './change.js';
import type { Session } from './context.js';
import { bindDocument, renderActions, rollbackJson } from './render/bind.js';

/** Statuses of a plan that is only reported (dry run, refusal, nothing to do). */
export function reportPlan(plan: Plan, dryRun: boolean): ActionResult[] {
  return plan.actions.map((a) => {
    const status: ActionStatus = a.kind === 'refused' ? 'refused' : a.kind === 'unchanged' ? 'unchanged' : dryRun ? 'planned' : 'unchanged';
    return { bdf: a.bdf, from: a.from, to: a.to, status, code: a.refusal, reason: a.reason, warnings: a.warnings };
  });
}

export function makeBinder(s: Session, command: string): Binder {
  return new Binder({ fs: s.fs, runner: s.ctx.runner, allowModprobe: s.fs.root === '/', exec: execOptions(s, command), warn: s.warn });
}

/** What to suggest for a refusal, in this command's terms (bind has --force, apply has group:N entries). */
export type RefusalHint = (refused: readonly ActionResult[]) => string;

/**
 * Carry out a bind/unbind/apply plan (or only report it), print the result — JSON even on
 * failure — and turn a refusal or failure into its exit code.
 */
export async function runPlan(s: Session, plan: Plan, dryRun: boolean, command: string, refusalHint: RefusalHint): Promise<void> {
  let actions: ActionResult[];
  let changed: boolean;
  let code: number = ExitCode.OK;
  let rollback: ReturnType<typeof rollbackJson> | null = null;
  let failure: string | null = null;
  if (dryRun || plan.refused || !plan.changes) {
    actions = reportPlan(plan, dryRun);
    changed = dryRun ? plan.changes : false;
    if (plan.refused) code = ExitCode.REFUSED;
  } else {
    const r = await makeBinder(s, command).apply(plan);
    actions = r.actions;
    changed = r.changed;
    code = r.exitCode;
    failure = r.failure;
    if (r.rollback.length) rollback = rollbackJson(r.rollback);
  }
  if (s.json) s.printJson({ ...bindDocument(dryRun, changed, actions), ...(rollback ? { rollback } : {}) });
  else {
    for (const a of actions) for (const w of a.warnings) s.warn(`${a.bdf}: ${w}`);
    s.print(renderActions(actions, dryRun, changed, s.chalk));
  }
  const what = command.split(' ')[0]!;
  if (code === ExitCode.REFUSED) {
    const refused = actions.filter((a) => a.status === 'refused');
    throw new VfioctlError(ExitCode.REFUSED, what, `refused for ${refused.length} device${refused.length === 1 ? '' : 's'}; nothing was changed`, refusalHint(refused));
  }
  if (code !== ExitCode.OK) {
    const failed = actions.filter((a) => a.status === 'failed').map((a) => a.bdf);
    const complete = rollback === null || rollback.complete;
    throw new VfioctlError(code as 1, what, `${failure ?? 'failed'}${failed.length ? ` (${failed.join(', ')})` : ''}`,
      complete ? `every device changed in this run was put back as it was; 'vfioctl groups' shows them` : `rollback failed for ${rollback!.subjects.filter((x) => x.status === 'rollback-failed').map((x) => `${x.id} (fix: ${x.fix})`).join('; ')}`);
  }
}
