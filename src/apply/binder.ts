import type { Bdf } from '../model/address.js';
import { VfioctlError, errnoOf } from '../errors.js';
import { ExitCode, type ExitCodeValue } from '../exit-codes.js';
import type { Runner } from '../cli/context.js';
import type { ActionStatus, Plan, PlannedAction } from '../plan/bind-plan.js';
import type { FsRoot } from '../sysfs/fsroot.js';
import { driverRegistered, loadedDriverOfModule, moduleOfDriver } from '../sysfs/modules.js';
import { PCI_DRIVERS_PROBE, devicePath, driverPath } from '../sysfs/paths.js';
import { overrideValue } from '../sysfs/scan.js';
import { readRecord, removeRecord, writeRecord, type DeviceRecord } from './state.js';

/**
 * Performs a bind or unbind plan with the kernel's sequence (kernel.md §3.5): override
 * first, then unbind, then probe, then read the `driver` link back — drivers_probe
 * succeeds even when nothing bound. Any failure puts every device changed in this run
 * back where it was, newest first.
 */

export interface BinderDeps {
  readonly fs: FsRoot;
  readonly runner: Runner;
  /** modprobe may run (only against the live kernel, never under another --root). */
  readonly allowModprobe: boolean;
}

export interface ActionResult {
  readonly bdf: Bdf;
  readonly from: string | null;
  readonly to: string | null;
  readonly status: ActionStatus;
  readonly reason: string | null;
  readonly warnings: readonly string[];
}

export interface ApplyResult {
  readonly actions: ActionResult[];
  readonly changed: boolean;
  /** 0 when everything succeeded; 1, or 5 for a permission problem, otherwise. */
  readonly exitCode: ExitCodeValue;
}

/** A failed step: message for the report, exit code for the run. */
class StepError extends Error {
  constructor(message: string, readonly exitCode: ExitCodeValue = ExitCode.FAILURE) {
    super(message);
  }
}

const describe = (err: unknown): StepError => {
  if (err instanceof StepError) return err;
  if (err instanceof VfioctlError) return new StepError(`${err.what}: ${err.why}`, err.code === ExitCode.PERMISSION ? ExitCode.PERMISSION : ExitCode.FAILURE);
  // State files under /run: a non-root user cannot create them.
  const code = errnoOf(err);
  if (code === 'EACCES' || code === 'EPERM') return new StepError(`${err instanceof Error ? err.message : String(err)} (run as root)`, ExitCode.PERMISSION);
  return new StepError(err instanceof Error ? err.message : String(err));
};

interface Snapshot {
  readonly bdf: Bdf;
  readonly driver: string | null;
  readonly override: string | null;
}

export class Binder {
  constructor(private readonly deps: BinderDeps) {}

  // --verbose echoes writes in FsRoot.write, so every command's writes show the same way.
  private write(path: string, value: string): void {
    this.deps.fs.write(path, value);
  }

  driverOf(bdf: Bdf): string | null {
    return this.deps.fs.linkName(`${devicePath(bdf)}/driver`) ?? null;
  }

  overrideOf(bdf: Bdf): string | null {
    return overrideValue(this.deps.fs.read(`${devicePath(bdf)}/driver_override`));
  }

  /** Write driver_override and read it back. A lone newline clears it (kernel.md §3.1). */
  setOverride(bdf: Bdf, driver: string | null): void {
    this.write(`${devicePath(bdf)}/driver_override`, `${driver ?? ''}\n`);
    const now = this.overrideOf(bdf);
    if (now !== driver) throw new StepError(`driver_override of ${bdf} reads "${now ?? '(null)'}" after writing "${driver ?? ''}"`);
  }

  /** Unbind from the current driver and check the link is gone. */
  unbindCurrent(bdf: Bdf): void {
    const cur = this.driverOf(bdf);
    if (cur === null) return;
    this.write(`${driverPath(cur)}/unbind`, bdf);
    const now = this.driverOf(bdf);
    if (now !== null) throw new StepError(`${bdf} is still bound to ${now} after writing to ${driverPath(cur)}/unbind`);
  }

  /** drivers_probe, then the read-back that alone says whether a driver took the device. */
  probe(bdf: Bdf, want: string | null): string | null {
    this.write(PCI_DRIVERS_PROBE, bdf);
    const now = this.driverOf(bdf);
    if (want !== null && now !== want) {
      throw new StepError(`${want} did not take ${bdf} (${now ? `bound to ${now}` : 'left without a driver'} after drivers_probe); the kernel log may say "probe with driver ${want} failed"`);
    }
    return now;
  }

  bindTo(bdf: Bdf, driver: string): void {
    this.write(`${driverPath(driver)}/bind`, bdf);
    const now = this.driverOf(bdf);
    if (now !== driver) throw new StepError(`${bdf} is ${now ? `bound to ${now}` : 'without a driver'} after writing to ${driverPath(driver)}/bind`);
  }

  /** Load a module if its driver is not registered; returns the driver's real name. */
  async ensureDriver(driver: string, module: string | null): Promise<string> {
    const { fs } = this.deps;
    if (driverRegistered(fs, driver)) return driver;
    if (module === null) throw new StepError(`driver ${driver} is not registered and its module is unknown`);
    if (!this.deps.allowModprobe) {
      throw new StepError(`driver ${driver} is not registered in the tree under ${fs.root}, and vfioctl loads modules only into the live kernel (--root /)`);
    }
    const r = await this.deps.runner('modprobe', [module]);
    if (r.exitCode !== 0) throw new StepError(`modprobe ${module} failed (exit ${r.exitCode})${r.stderr.trim() ? `: ${r.stderr.trim()}` : ''}`);
    const real = loadedDriverOfModule(fs, module) ?? driver;
    if (!driverRegistered(fs, real)) throw new StepError(`module ${module} loaded but registered no PCI driver named ${driver}`);
    return real;
  }

  /**
   * Put a device back to a snapshot: override as it was, off whatever it is on now, then
   * probe (or bind explicitly when probing picks another driver). Returns an error text or null.
   */
  restore(s: Snapshot): string | null {
    const problems: string[] = [];
    const attempt = (f: () => void) => {
      try {
        f();
      } catch (err) {
        problems.push(describe(err).message);
      }
    };
    attempt(() => this.setOverride(s.bdf, s.override));
    const cur = this.driverOf(s.bdf);
    if (cur !== null && cur !== s.driver) attempt(() => this.unbindCurrent(s.bdf));
    if (s.driver !== null && this.driverOf(s.bdf) === null) {
      attempt(() => void this.probe(s.bdf, null));
      if (this.driverOf(s.bdf) === null && driverRegistered(this.deps.fs, s.driver)) attempt(() => this.bindTo(s.bdf, s.driver!));
    }
    const driver = this.driverOf(s.bdf);
    const override = this.overrideOf(s.bdf);
    if (driver === s.driver && override === s.override) return null;
    return `left on ${driver ?? 'no driver'} with driver_override ${override ?? '(null)'} instead of ${s.driver ?? 'no driver'}${problems.length ? ` (${problems.join('; ')})` : ''}`;
  }

  /** Bind one device to a vfio driver, recording the host driver it had first. */
  private bindOne(a: PlannedAction, driver: string, prior: DeviceRecord | undefined): void {
    const { fs } = this.deps;
    const from = this.driverOf(a.bdf);
    if (!a.fromVfio) {
      // From the host (or unbound): this is what unbind gives it back to. A record left from
      // an earlier bind is stale once something else put the device back on the host.
      writeRecord(fs, { bdf: a.bdf, driver: from, module: from ? moduleOfDriver(fs, from) ?? null : null, override: this.overrideOf(a.bdf), boundTo: driver, at: new Date().toISOString() });
    } else if (prior) {
      // vfio-pci → variant (or back): the device still belongs to the host driver recorded first.
      writeRecord(fs, { ...prior, boundTo: driver });
    }
    this.setOverride(a.bdf, driver);
    this.unbindCurrent(a.bdf);
    this.probe(a.bdf, driver);
  }

  /** Give one device back: clear the override, leave vfio, bind the wanted driver or let the kernel choose. */
  private releaseOne(a: PlannedAction, driver: string | null): string | null {
    this.setOverride(a.bdf, null);
    this.unbindCurrent(a.bdf);
    if (driver !== null) {
      this.bindTo(a.bdf, driver);
      return driver;
    }
    return this.probe(a.bdf, null);
  }

  /** Put a record back as it was before this run touched it. */
  private restoreRecord(bdf: Bdf, prior: DeviceRecord | undefined): void {
    if (prior) writeRecord(this.deps.fs, prior);
    else removeRecord(this.deps.fs, bdf);
  }

  /** Run the plan's bind/release actions in order; roll everything back on the first failure. */
  async apply(plan: Plan): Promise<ApplyResult> {
    const results: ActionResult[] = plan.actions.map((a) => ({
      bdf: a.bdf, from: a.from, to: a.to,
      status: a.kind === 'refused' ? 'refused' : 'unchanged',
      reason: a.reason, warnings: a.warnings,
    }));
    const work = plan.actions.map((a, i) => ({ a, i })).filter(({ a }) => a.kind === 'bind' || a.kind === 'release');
    if (plan.refused || work.length === 0) return { actions: results, changed: false, exitCode: ExitCode.OK };

    // Load every module first: a failed load then changes nothing.
    const drivers = new Map<number, string | null>();
    for (const { a, i } of work) {
      if (a.to === null) {
        drivers.set(i, null);
        continue;
      }
      try {
        drivers.set(i, await this.ensureDriver(a.to, a.module));
      } catch (err) {
        const e = describe(err);
        results[i] = { ...results[i]!, status: 'failed', reason: e.message };
        for (const w of work) if (w.i !== i) results[w.i] = { ...results[w.i]!, reason: 'not attempted: a driver could not be loaded' };
        return { actions: results, changed: false, exitCode: e.exitCode };
      }
    }

    const done: { i: number; snap: Snapshot; prior: DeviceRecord | undefined }[] = [];
    for (const { a, i } of work) {
      const snap: Snapshot = { bdf: a.bdf, driver: this.driverOf(a.bdf), override: this.overrideOf(a.bdf) };
      const prior = readRecord(this.deps.fs, a.bdf);
      const driver = drivers.get(i) ?? null;
      try {
        if (a.kind === 'bind') {
          this.bindOne(a, driver!, prior);
          results[i] = { ...results[i]!, to: driver, status: 'bound' };
        } else {
          const now = this.releaseOne(a, driver);
          results[i] = { ...results[i]!, to: now, status: 'unbound' };
        }
        done.push({ i, snap, prior });
      } catch (err) {
        const e = describe(err);
        const left = this.restore(snap);
        this.restoreRecord(a.bdf, prior);
        results[i] = { ...results[i]!, status: 'failed', reason: left ? `${e.message}; could not restore it: ${left}` : `${e.message}; restored to ${snap.driver ?? 'no driver'}` };
        let unrestored = left !== null;
        for (const d of done.reverse()) {
          const problem = this.restore(d.snap);
          if (problem !== null) unrestored = true;
          this.restoreRecord(d.snap.bdf, d.prior);
          results[d.i] = problem === null
            ? { ...results[d.i]!, to: d.snap.driver, status: 'rolled-back', reason: `rolled back to ${d.snap.driver ?? 'no driver'} after ${a.bdf} failed` }
            : { ...results[d.i]!, status: 'failed', reason: `rollback failed: ${problem}` };
        }
        for (const w of work) {
          if (results[w.i]!.status === 'unchanged') results[w.i] = { ...results[w.i]!, reason: `not attempted: ${a.bdf} failed` };
        }
        // changed: whether the host ends up different from how it started (rolled back = not changed).
        return { actions: results, changed: unrestored, exitCode: e.exitCode };
      }
    }
    // Released devices are the host's again: forget them only now that nothing can roll back.
    for (const { a } of work) if (a.kind === 'release') removeRecord(this.deps.fs, a.bdf);
    return { actions: results, changed: true, exitCode: ExitCode.OK };
  }
}
