import type { Command } from 'commander';
import { readRecord } from '../../apply/state.js';
import { notFound } from '../../errors.js';
import type { Bdf } from '../../model/address.js';
import { planUnbind } from '../../plan/bind-plan.js';
import { hostUseChecker, type HostUse } from '../../sysfs/in-use.js';
import { readVfioAliases, resolveDriverName } from '../../sysfs/modules.js';
import { scanHost } from '../../sysfs/scan.js';
import { openSession, type CliContext } from '../context.js';
import { makeBinder, runPlan, selectDevices, vfioFamilyDrivers, withLock } from './bind.js';

interface UnbindOptions {
  to?: string;
  dryRun?: boolean;
  force?: boolean;
}

export function registerUnbind(program: Command, ctx: CliContext): void {
  program
    .command('unbind')
    .description('give vfio-bound devices back to their host driver (the one recorded at bind, the kernel\'s choice, or --to)')
    .argument('<selector...>', 'PCI address, interface, block device, VENDOR:DEVICE or group:N')
    .option('--to <driver>', 'bind this driver instead of the recorded one')
    .option('--dry-run', 'change nothing; show what would be done')
    .option('--force', 'unbind even when a VFIO user has the device open (the write blocks until it closes)')
    .option('--json', 'print JSON (see vfioctl(8), JSON OUTPUT)')
    .action(async (selectors: string[], opts: UnbindOptions, cmd: Command) => {
      const s = openSession(ctx, cmd);
      const dryRun = opts.dryRun === true;
      await withLock(s, dryRun, async () => {
        const host = scanHost(s.fs);
        const picked = selectDevices(s.fs, host, selectors);
        // group:N brings its bridges along; they never have vfio drivers, so leave them out.
        const selected = picked.selected.filter((b) => picked.explicit.has(b) || !host.devices.get(b)?.bridge);
        const aliases = readVfioAliases(s.fs, host.kernelRelease).aliases;
        let to: { driver: string; module: string | null } | null = null;
        if (opts.to !== undefined) {
          const r = resolveDriverName(s.fs, opts.to.trim(), aliases);
          if (!r) throw notFound(`driver "${opts.to}"`, 'no such driver or module is registered or loaded', 'load its module, or leave out --to to let the kernel choose');
          to = { driver: r.driver, module: r.module };
        }
        const records = new Map<Bdf, { driver: string | null; module: string | null }>();
        const uses = new Map<Bdf, HostUse[]>();
        const check = hostUseChecker(s.fs, host);
        for (const b of selected) {
          const rec = readRecord(s.fs, b);
          if (rec) records.set(b, rec);
          uses.set(b, check(b));
        }
        const plan = planUnbind({ host, selected, force: opts.force === true, to, records, uses, vfioDrivers: vfioFamilyDrivers(s.fs, host, aliases) });
        await runPlan(s, plan, dryRun, 'unbind', () => makeBinder(s));
      });
    });
}
