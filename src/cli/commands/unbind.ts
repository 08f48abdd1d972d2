import type { Command } from 'commander';
import { readRecord } from '../../apply/state.js';
import type { Bdf } from '../../model/address.js';
import { planUnbind } from '../../plan/bind-plan.js';
import { hostUses, namedDriver, selectDevices, vfioAliases, vfioFamilyDrivers } from '../../sysfs/bind-facts.js';
import { checkDriverOption } from '../../sysfs/modules.js';
import { scanHost } from '../../sysfs/scan.js';
import { withChange } from '../change.js';
import { openSession, type CliContext } from '../context.js';
import { runPlan } from '../run-plan.js';

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
      const toName = opts.to === undefined ? undefined : checkDriverOption(opts.to.trim(), '--to');
      const dryRun = opts.dryRun === true;
      await withChange(s, dryRun, async () => {
        const host = scanHost(s.fs);
        const picked = selectDevices(s.fs, host, selectors);
        // group:N brings its bridges along; they never have vfio drivers, so leave them out.
        const selected = picked.selected.filter((b) => picked.explicit.has(b) || !host.devices.get(b)?.bridge);
        const aliases = vfioAliases(s.fs, host);
        const to = toName === undefined ? null : namedDriver(s.fs, aliases, toName);
        const records = new Map<Bdf, { driver: string | null; module: string | null }>();
        for (const b of selected) {
          const rec = readRecord(s.fs, b, s.warn);
          if (rec) records.set(b, rec);
        }
        const plan = planUnbind({ host, selected, force: opts.force === true, to, records, uses: hostUses(s.fs, host, selected), vfioDrivers: vfioFamilyDrivers(s.fs, host, aliases) });
        await runPlan(s, plan, dryRun, `unbind ${selectors.join(' ')}`.slice(0, 200),
          () => `a VFIO user (a VM) has the device open: stop it first, or unbind anyway (the write then waits until it closes): 'vfioctl unbind ${selectors.join(' ')} --force'`);
      });
    });
}
