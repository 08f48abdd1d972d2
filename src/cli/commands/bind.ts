import type { Command } from 'commander';
import { planBind } from '../../plan/bind-plan.js';
import { checkDriverOption } from '../../sysfs/modules.js';
import { chooseDrivers, groupPeers, hostUses, noiommuEnabled, selectDevices, vfioAliases, vfioFamilyDrivers } from '../../sysfs/bind-facts.js';
import { scanHost } from '../../sysfs/scan.js';
import { withChange } from '../change.js';
import { openSession, type CliContext } from '../context.js';
import { runPlan, type RefusalHint } from '../run-plan.js';

interface BindOptions {
  variant: string;
  group?: boolean;
  dryRun?: boolean;
  force?: boolean;
}

/** bind's way out of a refusal: --group for group blockers, --force for what it may override; never for what the kernel refuses. */
export const bindRefusalHint: RefusalHint = (refused) => {
  const codes = new Set(refused.map((a) => a.code));
  const tips: string[] = [];
  if (codes.has('group')) tips.push('add --group to bind the whole IOMMU group');
  if (codes.has('bridge')) tips.push('bind the endpoints behind a bridge, not the bridge (the kernel refuses bridges)');
  if (codes.has('sriov-vfs')) tips.push('remove the VFs first: vfioctl vfs PF --count 0');
  if ([...codes].some((c) => c === 'in-use' || c === 'variant-mismatch' || c === 'no-iommu-group' || c === 'group')) tips.push('--force overrides the safety checks (in use, group not viable, variant not matching)');
  return tips.join('; ') || 'see each action\'s reason';
};

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
      const variant = opts.variant.trim() === 'auto' ? 'auto' : checkDriverOption(opts.variant, '--variant');
      const dryRun = opts.dryRun === true;
      await withChange(s, dryRun, async () => {
        const host = scanHost(s.fs);
        const { selected, explicit } = selectDevices(s.fs, host, selectors);
        const aliases = vfioAliases(s.fs, host);
        const peers = groupPeers(host, selected);
        const plan = planBind({
          host, selected, explicit,
          group: opts.group === true,
          force: opts.force === true,
          choices: chooseDrivers(s.fs, host, aliases, variant, selected, opts.group ? peers : []),
          uses: hostUses(s.fs, host, [...selected, ...peers]),
          noiommu: noiommuEnabled(s.fs),
          vfioDrivers: vfioFamilyDrivers(s.fs, host, aliases),
          keepVfio: variant === 'auto',
        });
        await runPlan(s, plan, dryRun, `bind ${selectors.join(' ')}`.slice(0, 200), bindRefusalHint);
      });
    });
}
