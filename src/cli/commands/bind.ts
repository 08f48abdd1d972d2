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

/**
 * bind's way out of a refusal, as command lines that work here: --group for a group that would
 * not be viable, --force for what it may override; never --force for what the kernel refuses.
 */
export function bindRefusalHint(selectors: readonly string[], variant: string): RefusalHint {
  const again = (extra: string) => `'vfioctl bind ${selectors.join(' ')}${variant === 'auto' ? '' : ` --variant ${variant}`}${extra}'`;
  return (refused) => {
    const codes = new Set(refused.map((a) => a.code));
    const tips: string[] = [];
    if (codes.has('group')) tips.push(`bind the whole IOMMU group: ${again(' --group')}`);
    for (const a of refused.filter((x) => x.code === 'bridge')) tips.push(`bind the endpoints behind ${a.bdf}, not the bridge (the kernel refuses bridges): 'vfioctl show ${a.bdf}' lists its group`);
    for (const a of refused.filter((x) => x.code === 'sriov-vfs')) tips.push(`remove the VFs first: 'vfioctl vfs ${a.bdf} --count 0'`);
    if ([...codes].some((c) => c === 'in-use' || c === 'variant-mismatch' || c === 'no-iommu-group') && !codes.has('bridge')) {
      tips.push(`if you are sure the host can lose it: ${again(' --force')}`);
    }
    return tips.join('; ') || `each action's reason says why: 'vfioctl bind ${selectors.join(' ')} --dry-run'`;
  };
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
        await runPlan(s, plan, dryRun, `bind ${selectors.join(' ')}${opts.group ? ' --group' : ''} --variant ${variant}${opts.force ? ' --force' : ''}`.slice(0, 200), bindRefusalHint(selectors, variant));
      });
    });
}
