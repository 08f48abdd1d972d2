import type { Bdf } from '../model/address.js';
import { ExitCode, type ExitCodeValue } from '../exit-codes.js';
import type { Runner } from '../ports.js';
import type { ActionStatus, Plan } from '../plan/bind-plan.js';
import { bindSteps, deviceOfStep, type DeviceFacts } from '../plan/bind-steps.js';
import type { FsRoot } from '../sysfs/fsroot.js';
import { driverRegistered, loadedDriverOfModule, moduleOfDriver } from '../sysfs/modules.js';
import { execute, type ExecOptions, type ExecResult, type SubjectOutcome, type Transaction } from '../exec/executor.js';
import { driverOf, overrideOf, StepFailure } from '../exec/subjects.js';
import { readRecord } from './state.js';
import { isDriverName } from '../model/names.js';

/**
 * Carries out a bind or unbind plan: loads the drivers' modules first (a failed load changes
 * nothing), then runs the plan's steps through the executor, which records, verifies and on
 * any failure puts every device and record back.
 */

export interface BinderDeps {
  readonly fs: FsRoot;
  readonly runner: Runner;
  /** modprobe may run (only against the live kernel, never under another --root). */
  readonly allowModprobe: boolean;
  /** How the executor runs (journal name, signals, test hook). */
  readonly exec: Omit<ExecOptions, 'fs'>;
  readonly warn?: (text: string) => void;
}

export interface ActionResult {
  readonly bdf: Bdf;
  readonly from: string | null;
  readonly to: string | null;
  readonly status: ActionStatus;
  /** Stable word for a refusal or failure (`in-use`, `write-failed`, `rollback-failed`, …); null when fine. */
  readonly code: string | null;
  readonly reason: string | null;
  readonly warnings: readonly string[];
}

export interface ApplyResult {
  readonly actions: ActionResult[];
  readonly changed: boolean;
  /** 0 when everything succeeded; 1, 5 for a permission problem, or 70 for a bug (after rolling back). */
  readonly exitCode: ExitCodeValue;
  /** Per subject (device, record file) after a failure: rolled back or not. Empty on success. */
  readonly rollback: readonly SubjectOutcome[];
  /** The failure's message, when the run failed. */
  readonly failure: string | null;
}

export class Binder {
  constructor(private readonly deps: BinderDeps) {}

  /** Load a module if its driver is not registered; returns the driver's real name. */
  async ensureDriver(driver: string, module: string | null): Promise<string> {
    const { fs } = this.deps;
    if (driverRegistered(fs, driver)) return driver;
    if (module === null) throw new StepFailure(`driver ${driver} is not registered and its module is unknown`);
    if (!isDriverName(module)) throw new StepFailure(`module name "${String(module).slice(0, 40)}" is not a module name; not running modprobe`);
    if (!this.deps.allowModprobe) {
      throw new StepFailure(`driver ${driver} is not registered in the tree under ${fs.root}, and vfioctl loads modules only into the live kernel (--root /)`);
    }
    const r = await this.deps.runner('modprobe', ['--', module]);
    if (r.exitCode !== 0) throw new StepFailure(`modprobe ${module} failed (exit ${r.exitCode})${r.stderr.trim() ? `: ${r.stderr.trim().split('\n')[0]}` : ''}`);
    const real = loadedDriverOfModule(fs, module) ?? driver;
    if (!driverRegistered(fs, real)) throw new StepFailure(`module ${module} loaded but registered no PCI driver named ${driver}`);
    return real;
  }

  /**
   * Run the plan's bind/release actions; everything or nothing. `more` runs inside the same
   * transaction after the plan's steps (vfs uses the binder inside its own transaction instead).
   */
  async apply(plan: Plan): Promise<ApplyResult> {
    const base = this.baseResults(plan);
    const work = plan.actions.map((a, i) => ({ a, i })).filter(({ a }) => a.kind === 'bind' || a.kind === 'release');
    if (plan.refused || work.length === 0) return { actions: base, changed: false, exitCode: ExitCode.OK, rollback: [], failure: null };

    const prepared = await this.prepare(plan, base);
    if ('failed' in prepared) return prepared.failed;
    const r = await execute({ ...this.deps.exec, fs: this.deps.fs }, (tx) => this.runIn(tx, plan, prepared.drivers));
    return this.report(plan, prepared.drivers, r);
  }

  /** The statuses of a plan before anything is done: refused, or unchanged. */
  baseResults(plan: Plan): ActionResult[] {
    return plan.actions.map((a) => ({
      bdf: a.bdf, from: a.from, to: a.to,
      status: a.kind === 'refused' ? 'refused' : 'unchanged',
      code: a.refusal, reason: a.reason, warnings: a.warnings,
    }));
  }

  /** Load every module the plan needs first: a failed load then changes nothing. */
  async prepare(plan: Plan, base = this.baseResults(plan)): Promise<{ drivers: Map<number, string | null> } | { failed: ApplyResult }> {
    const drivers = new Map<number, string | null>();
    const work = plan.actions.map((a, i) => ({ a, i })).filter(({ a }) => a.kind === 'bind' || a.kind === 'release');
    for (const { a, i } of work) {
      try {
        drivers.set(i, a.to === null ? null : await this.ensureDriver(a.to, a.module));
      } catch (err) {
        const e = err instanceof StepFailure ? err : new StepFailure(String(err));
        const results = base.map((r, j) => (j === i ? { ...r, status: 'failed' as const, code: 'driver-unavailable', reason: e.message }
          : work.some((w) => w.i === j) ? { ...r, code: 'not-attempted', reason: 'not attempted: a driver could not be loaded' } : r));
        return { failed: { actions: results, changed: false, exitCode: e.exitCode as ExitCodeValue, rollback: [], failure: e.message } };
      }
    }
    return { drivers };
  }

  /** The plan's steps inside a running transaction (also used by vfs for the new VFs). */
  async runIn(tx: Transaction, plan: Plan, drivers: ReadonlyMap<number, string | null>): Promise<void> {
    const { fs } = this.deps;
    const work = plan.actions.flatMap((action, i) => (action.kind === 'bind' || action.kind === 'release' ? [{ action, driver: drivers.get(i) ?? null }] : []));
    const facts = new Map<Bdf, DeviceFacts>();
    for (const { action: a } of work) {
      const from = driverOf(fs, a.bdf);
      facts.set(a.bdf, { override: overrideOf(fs, a.bdf), module: from ? moduleOfDriver(fs, from) ?? null : null, record: readRecord(fs, a.bdf, this.deps.warn) });
    }
    await tx.run(bindSteps(work, facts, new Date().toISOString()));
  }

  /** Per-device statuses from the executor's outcome. */
  report(plan: Plan, drivers: ReadonlyMap<number, string | null>, r: ExecResult<unknown>): ApplyResult {
    const { fs } = this.deps;
    const base = this.baseResults(plan);
    const isWork = (i: number) => plan.actions[i]!.kind === 'bind' || plan.actions[i]!.kind === 'release';
    if (r.ok) {
      const actions = base.map((b, i) => {
        if (!isWork(i)) return b;
        const a = plan.actions[i]!;
        return a.kind === 'bind'
          ? { ...b, to: drivers.get(i) ?? a.to, status: 'bound' as const }
          : { ...b, to: driverOf(fs, a.bdf), status: 'unbound' as const };
      });
      return { actions, changed: true, exitCode: ExitCode.OK, rollback: [], failure: null };
    }
    const failedBdf = r.failedStep ? deviceOfStep(r.failedStep) : null;
    const device = new Map(r.subjects.filter((s) => s.kind === 'device').map((s) => [s.id, s]));
    const files = r.subjects.filter((s) => s.kind === 'file' && s.status === 'rollback-failed');
    const after = failedBdf ? `after ${failedBdf} failed` : `after the run was ${r.message}`;
    const actions = base.map((b, i) => {
      if (!isWork(i)) return b;
      const bdf = b.bdf;
      const s = device.get(bdf);
      const fileLeft = files.find((f) => f.id.endsWith(`/${bdf}.json`));
      const back = driverOf(fs, bdf);
      if (bdf === failedBdf) {
        const left = s?.status === 'rollback-failed' ? `; could not restore it: ${s.left} (fix: ${s.fix})` : `; restored to ${back ?? 'no driver'}`;
        return { ...b, to: back, status: 'failed' as const, code: s?.status === 'rollback-failed' ? 'rollback-failed' : 'write-failed', reason: `${r.message}${left}${fileLeft ? `; record ${fileLeft.id} ${fileLeft.left} (fix: ${fileLeft.fix})` : ''}` };
      }
      if (!s) return { ...b, code: 'not-attempted', reason: `not attempted: ${failedBdf ?? r.message} failed` };
      if (s.status === 'rollback-failed' || fileLeft) {
        return { ...b, to: back, status: 'failed' as const, code: 'rollback-failed', reason: `rollback failed ${after}: ${s.status === 'rollback-failed' ? `${s.left} (fix: ${s.fix})` : ''}${fileLeft ? `record ${fileLeft.id}: ${fileLeft.left} (fix: ${fileLeft.fix})` : ''}` };
      }
      return { ...b, to: back, status: 'rolled-back' as const, code: 'rolled-back', reason: `rolled back to ${back ?? 'no driver'} ${after}` };
    });
    // changed: whether the host ends up different from how it started (rolled back = not changed).
    return { actions, changed: !r.rolledBack, exitCode: r.exitCode as ExitCodeValue, rollback: r.subjects, failure: r.message };
  }
}
