import type { Command } from 'commander';
import { Binder, type ActionResult } from '../../apply/binder.js';
import { takeLock, type Lock } from '../../apply/lock.js';
import { VfioctlError, notFound, usageError } from '../../errors.js';
import { ExitCode } from '../../exit-codes.js';
import type { Bdf } from '../../model/address.js';
import { groupOf, deviceOf } from '../../model/host.js';
import type { Host } from '../../model/types.js';
import type { ActionStatus, DriverChoice, Plan } from '../../plan/bind-plan.js';
import { planBind } from '../../plan/bind-plan.js';
import { CATCH_ALL_MODULE, isVariantModule, moduleMatches, rankWithFallback, type VfioAlias } from '../../plan/variant.js';
import type { FsRoot } from '../../sysfs/fsroot.js';
import { hostUseChecker, type HostUse } from '../../sysfs/in-use.js';
import { driverOfModule, driverRegistered, moduleOfDriver, readVfioAliases, resolveDriverName } from '../../sysfs/modules.js';
import { scanHost } from '../../sysfs/scan.js';
import { resolveSelector } from '../../sysfs/selectors.js';
import { openSession, type CliContext, type Session } from '../context.js';
import { bindDocument, renderActions } from '../render/bind.js';

interface BindOptions {
  variant: string;
  group?: boolean;
  dryRun?: boolean;
  force?: boolean;
}

/** Selected devices, and those named directly (not only through group:N). */
export function selectDevices(fs: FsRoot, host: Host, selectors: readonly string[]): { selected: Bdf[]; explicit: Set<Bdf> } {
  const all = new Set<Bdf>();
  const explicit = new Set<Bdf>();
  for (const text of selectors) {
    for (const b of resolveSelector(fs, host, text, { ids: true, groups: true })) {
      all.add(b);
      if (!/^group:/.test(text.trim())) explicit.add(b);
    }
  }
  return { selected: [...host.devices.keys()].filter((b) => all.has(b)), explicit };
}

/** Drivers of this host that belong to the vfio family by their module's vfio_pci aliases. */
export function vfioFamilyDrivers(fs: FsRoot, host: Host, aliases: readonly VfioAlias[] | null): Set<string> {
  const out = new Set<string>();
  const names = new Set([...host.devices.values()].flatMap((d) => [d.driver, d.driverOverride]).filter((x): x is string => x !== null));
  for (const name of names) {
    const module = moduleOfDriver(fs, name);
    if (module !== undefined && isVariantModule(aliases ?? [], module)) out.add(name);
  }
  return out;
}

export function noiommuEnabled(fs: FsRoot): boolean {
  return /^[Y1]/.test(fs.read('/sys/module/vfio/parameters/enable_unsafe_noiommu_mode')?.trim() ?? '');
}

/** Seconds to wait for another vfioctl's lock (VFIOCTL_LOCK_TIMEOUT). */
export function lockWaitMs(env: Record<string, string | undefined>): number {
  const n = Number(env.VFIOCTL_LOCK_TIMEOUT ?? '10');
  return Number.isFinite(n) && n >= 0 ? n * 1000 : 10_000;
}

/** Statuses of a plan that is only reported (dry run, refusal, nothing to do). */
export function reportPlan(plan: Plan, dryRun: boolean): ActionResult[] {
  return plan.actions.map((a) => {
    const status: ActionStatus = a.kind === 'refused' ? 'refused' : a.kind === 'unchanged' ? 'unchanged' : dryRun ? 'planned' : 'unchanged';
    return { bdf: a.bdf, from: a.from, to: a.to, status, reason: a.reason, warnings: a.warnings };
  });
}

/**
 * Print the result (JSON even on failure) and turn a refusal or failure into its exit code.
 * Shared by bind and unbind.
 */
export async function runPlan(s: Session, plan: Plan, dryRun: boolean, what: string, binder: () => Binder): Promise<void> {
  let actions: ActionResult[];
  let changed: boolean;
  let code: number = ExitCode.OK;
  if (dryRun || plan.refused || !plan.changes) {
    actions = reportPlan(plan, dryRun);
    changed = dryRun ? plan.changes : false;
    if (plan.refused) code = ExitCode.REFUSED;
  } else {
    const r = await binder().apply(plan);
    actions = r.actions;
    changed = r.changed;
    code = r.exitCode;
  }
  if (s.json) s.printJson(bindDocument(dryRun, changed, actions));
  else {
    for (const a of actions) for (const w of a.warnings) s.warn(`${a.bdf}: ${w}`);
    s.print(renderActions(actions, dryRun, changed, s.chalk));
  }
  if (code === ExitCode.REFUSED) {
    const n = actions.filter((a) => a.status === 'refused').length;
    throw new VfioctlError(ExitCode.REFUSED, what, `refused for ${n} device${n === 1 ? '' : 's'}; nothing was changed`, 'see the reasons above; --force overrides the safety checks');
  }
  if (code !== ExitCode.OK) {
    const failed = actions.filter((a) => a.status === 'failed').map((a) => a.bdf);
    throw new VfioctlError(code as 1, what, `failed for ${failed.join(', ') || 'a device'}`, 'devices changed in this run were put back; see each action\'s status');
  }
}

/** Run `fn` holding the change lock, unless this is a dry run. */
export async function withLock<T>(s: Session, dryRun: boolean, fn: () => Promise<T>): Promise<T> {
  let lock: Lock | undefined;
  if (!dryRun) lock = await takeLock(s.fs, lockWaitMs(s.ctx.env));
  try {
    return await fn();
  } finally {
    lock?.release();
  }
}

export function makeBinder(s: Session): Binder {
  return new Binder({
    fs: s.fs,
    runner: s.ctx.runner,
    allowModprobe: s.fs.root === '/',
  });
}

/** The driver each device goes to under --variant. */
export function chooseDrivers(fs: FsRoot, host: Host, aliases: readonly VfioAlias[] | null, variant: string, selected: readonly Bdf[], peers: readonly Bdf[]): Map<Bdf, DriverChoice> {
  const choices = new Map<Bdf, DriverChoice>();
  const auto = (bdf: Bdf): DriverChoice | undefined => {
    const best = rankWithFallback(aliases ?? [], deviceOf(host, bdf).modalias)[0];
    if (!best) return undefined;
    const { driver } = driverOfModule(fs, best.module);
    return { driver, module: best.module, registered: driverRegistered(fs, driver), matches: true };
  };
  let named: { driver: string; module: string | null; registered: boolean } | undefined;
  if (variant !== 'auto') {
    named = resolveDriverName(fs, variant, aliases);
    if (!named) throw notFound(`driver "${variant}"`, 'no such driver or module (not registered, not loaded, not in modules.alias)', "run 'vfioctl variants SELECTOR' to list the candidates");
  }
  for (const bdf of selected) {
    if (!named) {
      const c = auto(bdf);
      if (c) choices.set(bdf, c);
      continue;
    }
    const module = named.module;
    const isCatchAll = module === CATCH_ALL_MODULE || named.driver === 'vfio-pci';
    choices.set(bdf, { ...named, matches: isCatchAll || (module !== null && moduleMatches(aliases ?? [], module, deviceOf(host, bdf).modalias)) });
  }
  // Peers brought in by --group get their own best match, whatever --variant says.
  for (const bdf of peers) {
    if (choices.has(bdf)) continue;
    const c = auto(bdf);
    if (c) choices.set(bdf, c);
  }
  return choices;
}

export function registerBind(program: Command, ctx: CliContext): void {
  program
    .command('bind')
    .description('give devices to vfio-pci or a vfio-pci variant driver (driver_override), group-aware, with rollback')
    .argument('<selector...>', 'PCI address, interface, block device, VENDOR:DEVICE or group:N')
    .option('--variant <name>', 'auto (best matching variant), vfio-pci, or a variant module or driver name', 'auto')
    .option('--group', 'also bind every endpoint of the devices\' IOMMU groups that keeps a host driver (bridges stay)')
    .option('--dry-run', 'change nothing; show what would be done')
    .option('--force', 'override the safety checks (device in use, group not viable, variant not matching)')
    .option('--json', 'print JSON (see vfioctl(8), JSON OUTPUT)')
    .action(async (selectors: string[], opts: BindOptions, cmd: Command) => {
      const s = openSession(ctx, cmd);
      if (opts.variant.trim() === '') throw usageError('empty --variant', 'name auto, vfio-pci or a variant module or driver');
      const dryRun = opts.dryRun === true;
      await withLock(s, dryRun, async () => {
        const host = scanHost(s.fs);
        const { selected, explicit } = selectDevices(s.fs, host, selectors);
        const aliases = readVfioAliases(s.fs, host.kernelRelease).aliases;
        const peers = [...new Set(selected.map((b) => deviceOf(host, b).iommuGroup))]
          .flatMap((g) => (g === null ? [] : groupOf(host, g)?.devices ?? []));
        const check = hostUseChecker(s.fs, host);
        const uses = new Map<Bdf, HostUse[]>([...new Set([...selected, ...peers])].map((b) => [b, check(b)]));
        const plan = planBind({
          host,
          selected,
          explicit,
          group: opts.group === true,
          force: opts.force === true,
          choices: chooseDrivers(s.fs, host, aliases, opts.variant.trim(), selected, opts.group ? peers : []),
          uses,
          noiommu: noiommuEnabled(s.fs),
          vfioDrivers: vfioFamilyDrivers(s.fs, host, aliases),
          keepVfio: opts.variant.trim() === 'auto',
        });
        await runPlan(s, plan, dryRun, 'bind', () => makeBinder(s));
      });
    });
}
