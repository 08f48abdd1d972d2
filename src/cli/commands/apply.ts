import type { Command } from 'commander';
import { readRecord } from '../../apply/state.js';
import { usageError, VfioctlError } from '../../errors.js';
import { ExitCode } from '../../exit-codes.js';
import { resolveSelector } from '../../sysfs/selectors.js';
import type { Bdf } from '../../model/address.js';
import { deviceOf, isVfioBound } from '../../model/host.js';
import { mergePlans, planBind, planUnbind, type DriverChoice } from '../../plan/bind-plan.js';
import { formatDesiredState, parseDesiredState } from '../../provision/desired-state.js';
import { readDesiredInput } from '../../provision/read-input.js';
import { resolveTargets } from '../../provision/resolve.js';
import { chooseDrivers, groupPeers, hostUses, noiommuEnabled, vfioAliases, vfioFamilyDrivers } from '../../sysfs/bind-facts.js';
import { scanHost } from '../../sysfs/scan.js';
import { withChange } from '../change.js';
import { openSession, type CliContext } from '../context.js';
import { runPlan } from '../run-plan.js';
import { runPersist } from './persist.js';

interface ApplyOptions {
  dryRun?: boolean;
  export?: boolean;
  persist?: boolean;
  skipMissing?: boolean;
  only?: string;
}

export function registerApply(program: Command, ctx: CliContext): void {
  program
    .command('apply')
    .description('converge the host to a desired-state file of bindings (idempotent, with bind\'s safety checks and rollback); --export prints the current one')
    .argument('[file]', 'desired-state JSON file, or - for standard input')
    .option('--dry-run', 'change nothing; show what would be done')
    .option('--export', 'print the current vfio bindings as a desired-state file')
    .option('--persist', 'after applying, install it for boot as vfioctl persist does')
    .option('--skip-missing', 'a device the file names that is not present is a warning, not an error (the boot unit)')
    .option('--only <selector>', 'converge only this device (the hotplug unit: a device that was just added)')
    .option('--json', 'print JSON (see vfioctl(8), JSON OUTPUT)')
    .action(async (file: string | undefined, opts: ApplyOptions, cmd: Command) => {
      const s = openSession(ctx, cmd);
      if (opts.export) {
        if (file !== undefined || opts.persist || opts.only !== undefined || opts.skipMissing) throw usageError('apply --export', 'takes no FILE, --persist, --only or --skip-missing');
        const host = scanHost(s.fs);
        const vfioDrivers = vfioFamilyDrivers(s.fs, host, vfioAliases(s.fs, host));
        const bound = [...host.devices.values()].filter((d) => isVfioBound(d) || (d.driver !== null && vfioDrivers.has(d.driver)));
        s.ctx.stdout.write(formatDesiredState(bound.map((d) => ({ match: d.bdf, driver: d.driver ?? 'vfio-pci' }))));
        return;
      }
      if (file === undefined) throw usageError('apply', 'missing FILE', 'vfioctl apply FILE (or - for standard input), or vfioctl apply --export');
      if (opts.only !== undefined && opts.persist) throw usageError('apply --only', 'takes no --persist', 'persist installs the whole file: run vfioctl persist FILE');
      const input = await readDesiredInput(file, ctx.readStdin, process.cwd());
      const state = parseDesiredState(input.text, input.source);
      const dryRun = opts.dryRun === true;

      await withChange(s, dryRun, async () => {
        const host = scanHost(s.fs);
        const resolved = resolveTargets(s.fs, host, state.devices, input.source, { skipMissing: opts.skipMissing === true });
        const warnings = [...resolved.warnings];
        let targets = resolved.targets;
        if (opts.only !== undefined) {
          // One device, as the hotplug unit names it: the file's entries that cover it, no others.
          let only: Bdf[] = [];
          try {
            only = resolveSelector(s.fs, host, opts.only);
          } catch (err) {
            if (!(opts.skipMissing && err instanceof VfioctlError && err.code === ExitCode.NOT_FOUND)) throw err;
            warnings.push(`--only ${opts.only}: ${err.what}: ${err.why}; skipped`);
          }
          targets = targets.filter((t) => only.includes(t.bdf));
          if (only.length > 0 && targets.length === 0) warnings.push(`--only ${opts.only}: ${input.source} has no entry for ${only.join(', ')}; nothing to do`);
        }
        for (const w of warnings) s.warn(w);
        const aliases = vfioAliases(s.fs, host);
        const vfioDrivers = vfioFamilyDrivers(s.fs, host, aliases);
        const toVfio = targets.filter((t) => t.driver !== 'host');
        const toHost = targets.filter((t) => t.driver === 'host').map((t) => t.bdf);
        const choices = new Map<Bdf, DriverChoice>();
        for (const variant of new Set(toVfio.map((t) => t.driver))) {
          for (const [b, c] of chooseDrivers(s.fs, host, aliases, variant, toVfio.filter((t) => t.driver === variant).map((t) => t.bdf), [])) choices.set(b, c);
        }
        const uses = hostUses(s.fs, host, [...targets.map((t) => t.bdf), ...groupPeers(host, targets.map((t) => t.bdf))]);
        const records = new Map<Bdf, { driver: string | null; module: string | null }>();
        for (const b of toHost) {
          const rec = readRecord(s.fs, b, s.warn);
          if (rec) records.set(b, rec);
        }
        const plan = mergePlans([
          planBind({
            host, selected: toVfio.map((t) => t.bdf), explicit: new Set(toVfio.filter((t) => !/^group:/.test(t.entry.match)).map((t) => t.bdf)),
            group: false, force: false, choices, uses, noiommu: noiommuEnabled(s.fs), vfioDrivers,
          }),
          planUnbind({ host, selected: toHost, force: false, to: null, records, uses, vfioDrivers }),
        ]);
        await runPlan(s, plan, dryRun, `apply ${input.source}`.slice(0, 200), (refused) => {
          // apply has no --group or --force: the file is what changes.
          const groups = [...new Set(refused.filter((a) => a.code === 'group').map((a) => deviceOf(host, a.bdf).iommuGroup))];
          const tips = groups.map((g) => `add {"match":"group:${g}","driver":"vfio-pci"} to ${input.source} to hand over all of IOMMU group ${g}`);
          const again = input.source === '<stdin>' ? `'vfioctl apply - --dry-run' with the same input` : `'vfioctl apply ${input.source} --dry-run'`;
          if (refused.some((a) => a.code !== 'group')) tips.push(`remove or change the refused entries in ${input.source}; ${again} says why each is refused`);
          return tips.join('; ');
        });
      });

      if (opts.persist) {
        const r = await withChange(s, dryRun, () => runPersist(s, state, input.source, { dryRun }, !s.json));
        if (s.json) {
          for (const w of r.warnings) s.warn(w);
          for (const f of r.files) s.ctx.stderr.write(`persist: ${dryRun && f.action !== 'unchanged' ? `would ${f.action}` : f.action} ${f.path}\n`);
        }
      }
    });
}
