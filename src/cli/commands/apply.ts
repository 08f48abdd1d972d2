import type { Command } from 'commander';
import { readRecord } from '../../apply/state.js';
import { usageError } from '../../errors.js';
import type { Bdf } from '../../model/address.js';
import { deviceOf, groupOf, isVfioBound } from '../../model/host.js';
import { planBind, planUnbind, type DriverChoice, type Plan, type PlannedAction } from '../../plan/bind-plan.js';
import { formatDesiredState, parseDesiredState } from '../../provision/desired-state.js';
import { readDesiredInput } from '../../provision/read-input.js';
import { resolveTargets } from '../../provision/resolve.js';
import { hostUseChecker, type HostUse } from '../../sysfs/in-use.js';
import { readVfioAliases } from '../../sysfs/modules.js';
import { scanHost } from '../../sysfs/scan.js';
import { openSession, type CliContext } from '../context.js';
import { chooseDrivers, makeBinder, noiommuEnabled, runPlan, vfioFamilyDrivers, withLock } from './bind.js';
import { runPersist } from './persist.js';

interface ApplyOptions {
  dryRun?: boolean;
  export?: boolean;
  persist?: boolean;
}

/**
 * One plan from a bind plan and a release plan, with bind's all-or-nothing rule: if any
 * device is refused, nothing is attempted.
 */
export function mergePlans(plans: readonly Plan[]): Plan {
  const all = plans.flatMap((p) => p.actions).sort((a, b) => (a.bdf < b.bdf ? -1 : a.bdf > b.bdf ? 1 : 0));
  const refused = all.some((a) => a.kind === 'refused');
  const actions: PlannedAction[] = refused
    ? all.map((a) => (a.kind === 'bind' || a.kind === 'release' ? { ...a, kind: 'unchanged' as const, refusal: 'not-attempted' as const, reason: 'not attempted: another device was refused' } : a))
    : all;
  return { actions, refused, changes: !refused && actions.some((a) => a.kind === 'bind' || a.kind === 'release') };
}

export function registerApply(program: Command, ctx: CliContext): void {
  program
    .command('apply')
    .description('converge the host to a desired-state file of bindings (idempotent, with bind\'s safety checks and rollback); --export prints the current one')
    .argument('[file]', 'desired-state JSON file, or - for standard input')
    .option('--dry-run', 'change nothing; show what would be done')
    .option('--export', 'print the current vfio bindings as a desired-state file')
    .option('--persist', 'after applying, install it for boot as vfioctl persist does')
    .option('--json', 'print JSON (see vfioctl(8), JSON OUTPUT)')
    .action(async (file: string | undefined, opts: ApplyOptions, cmd: Command) => {
      const s = openSession(ctx, cmd);
      if (opts.export) {
        if (file !== undefined || opts.persist) throw usageError('apply --export', 'takes no FILE and no --persist');
        const host = scanHost(s.fs);
        const vfioDrivers = vfioFamilyDrivers(s.fs, host, readVfioAliases(s.fs, host.kernelRelease).aliases);
        const bound = [...host.devices.values()].filter((d) => isVfioBound(d) || (d.driver !== null && vfioDrivers.has(d.driver)));
        s.ctx.stdout.write(formatDesiredState(bound.map((d) => ({ match: d.bdf, driver: d.driver ?? 'vfio-pci' }))));
        return;
      }
      if (file === undefined) throw usageError('apply', 'missing FILE', 'vfioctl apply FILE (or - for standard input), or vfioctl apply --export');
      const input = await readDesiredInput(file, ctx.readStdin, process.cwd());
      const state = parseDesiredState(input.text, input.source);
      const dryRun = opts.dryRun === true;

      await withLock(s, dryRun, async () => {
        const host = scanHost(s.fs);
        const { targets, warnings } = resolveTargets(s.fs, host, state.devices, input.source);
        for (const w of warnings) s.warn(w);
        const aliases = readVfioAliases(s.fs, host.kernelRelease).aliases;
        const vfioDrivers = vfioFamilyDrivers(s.fs, host, aliases);

        const toVfio = targets.filter((t) => t.driver !== 'host');
        const toHost = targets.filter((t) => t.driver === 'host').map((t) => t.bdf);
        const choices = new Map<Bdf, DriverChoice>();
        for (const variant of new Set(toVfio.map((t) => t.driver))) {
          const bdfs = toVfio.filter((t) => t.driver === variant).map((t) => t.bdf);
          for (const [b, c] of chooseDrivers(s.fs, host, aliases, variant, bdfs, [])) choices.set(b, c);
        }
        const peers = [...new Set(targets.map((t) => deviceOf(host, t.bdf).iommuGroup))].flatMap((g) => (g === null ? [] : groupOf(host, g)?.devices ?? []));
        const check = hostUseChecker(s.fs, host);
        const uses = new Map<Bdf, HostUse[]>([...new Set([...targets.map((t) => t.bdf), ...peers])].map((b) => [b, check(b)]));
        const records = new Map<Bdf, { driver: string | null; module: string | null }>();
        for (const b of toHost) {
          const rec = readRecord(s.fs, b);
          if (rec) records.set(b, rec);
        }
        const plan = mergePlans([
          planBind({
            host,
            selected: toVfio.map((t) => t.bdf),
            explicit: new Set(toVfio.filter((t) => !/^group:/.test(t.entry.match)).map((t) => t.bdf)),
            group: false,
            force: false,
            choices,
            uses,
            noiommu: noiommuEnabled(s.fs),
            vfioDrivers,
          }),
          planUnbind({ host, selected: toHost, force: false, to: null, records, uses, vfioDrivers }),
        ]);
        await runPlan(s, plan, dryRun, 'apply', () => makeBinder(s));
      });

      if (opts.persist) {
        const r = await runPersist(s, state, input.source, { dryRun }, !s.json);
        if (s.json) {
          for (const w of r.warnings) s.warn(w);
          for (const f of r.files) s.ctx.stderr.write(`persist: ${dryRun && f.action !== 'unchanged' ? `would ${f.action}` : f.action} ${f.path}\n`);
        }
      }
    });
}
