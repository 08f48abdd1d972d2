import type { Bdf } from '../model/address.js';
import { deviceOf } from '../model/host.js';
import type { Host } from '../model/types.js';
import { VfioctlError } from '../errors.js';
import { ExitCode } from '../exit-codes.js';
import { execute, type ExecOptions, type ExecResult } from '../exec/executor.js';
import type { Plan } from '../plan/bind-plan.js';
import type { Step } from '../exec/steps.js';
import type { FsRoot } from '../sysfs/fsroot.js';
import { scanHost } from '../sysfs/scan.js';
import type { ActionResult, Binder } from './binder.js';

/**
 * A VF count change as one transaction: create (autoprobe off when binding), bind the new VFs
 * through the binder's steps, autoprobe back on; any failure puts the PF back to its count,
 * autoprobe and old VFs' drivers (the executor's sriov subject) and the new VFs with it.
 */
export interface VfsChange {
  readonly fs: FsRoot;
  readonly binder: Binder;
  readonly exec: Omit<ExecOptions, 'fs'>;
  readonly pf: Bdf;
  readonly steps: { readonly create: readonly Step[]; readonly finish: readonly Step[] };
  /** The plan that binds the VFs now present (null: leave them to their host drivers). */
  readonly bindPlan: ((host: Host, vfs: Bdf[]) => Plan) | null;
}

export async function runVfsChange(c: VfsChange): Promise<{ result: ExecResult<void>; actions: ActionResult[] }> {
  let actions: ActionResult[] = [];
  let plan: Plan | undefined;
  let drivers = new Map<number, string | null>();
  const result = await execute({ ...c.exec, fs: c.fs }, async (tx) => {
    await tx.run(c.steps.create);
    if (c.bindPlan) {
      const host = scanHost(c.fs);
      plan = c.bindPlan(host, [...deviceOf(host, c.pf).virtfns]);
      if (plan.refused) {
        actions = c.binder.baseResults(plan);
        throw new VfioctlError(ExitCode.REFUSED, `vfs ${c.pf}`, `the new VFs cannot be bound: ${actions.filter((a) => a.status === 'refused').map((a) => `${a.bdf} (${a.reason})`).join('; ')}`);
      }
      const prepared = await c.binder.prepare(plan);
      if ('failed' in prepared) {
        actions = prepared.failed.actions;
        throw new VfioctlError(prepared.failed.exitCode, `vfs ${c.pf}`, prepared.failed.failure ?? 'a driver could not be loaded');
      }
      drivers = prepared.drivers;
      await c.binder.runIn(tx, plan, drivers);
    }
    await tx.run(c.steps.finish);
  });
  if (plan && !plan.refused && drivers.size) actions = c.binder.report(plan, drivers, result).actions;
  return { result, actions };
}
