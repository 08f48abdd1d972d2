import type { Command } from 'commander';
import { quoteShort } from '../../model/names.js';
import { notFound, usageError } from '../../errors.js';
import { groupOf, isVfioBound, deviceOf } from '../../model/host.js';
import { scanHost } from '../../sysfs/scan.js';
import { loadPciNames } from '../../sysfs/pciids.js';
import { resolveSelector } from '../../sysfs/selectors.js';
import { PROC_CMDLINE } from '../../sysfs/paths.js';
import { openSession, type CliContext } from '../context.js';
import { groupJson, renderGroups, renderGroupsBoxed, viewGroup } from '../render/groups.js';

interface GroupsOptions {
  group?: string;
  device?: string;
  notViable?: boolean;
  vfio?: boolean;
}

export function registerGroups(program: Command, ctx: CliContext): void {
  program
    .command('groups')
    .description('list IOMMU groups, their devices, and whether each group is viable for VFIO')
    .option('--group <n>', 'only this group')
    .option('--device <selector>', 'only the group holding this device (address, interface or block device)')
    .option('--not-viable', 'only groups that are not viable')
    .option('--vfio', 'only groups with a device bound to vfio-pci or a variant')
    .option('--json', 'print JSON (see vfioctl(8), JSON OUTPUT)')
    .action(async (opts: GroupsOptions, cmd: Command) => {
      const s = openSession(ctx, cmd);
      const host = scanHost(s.fs);
      let groups = host.groups;
      if (opts.group !== undefined) {
        if (!/^\d+$/.test(opts.group)) throw usageError(`invalid group ${quoteShort(opts.group)}`, 'a group is a non-negative number');
        const g = groupOf(host, Number(opts.group));
        if (!g) throw notFound(`group ${opts.group}`, 'no such IOMMU group', "run 'vfioctl groups' to list groups");
        groups = [g];
      }
      if (opts.device !== undefined) {
        const [bdf] = resolveSelector(s.fs, host, opts.device);
        const id = deviceOf(host, bdf!).iommuGroup;
        if (id === null) throw notFound(`device ${bdf}`, 'has no IOMMU group', host.iommuPresent ? undefined : 'enable the IOMMU (intel_iommu=on or amd_iommu=on) and reboot');
        groups = groups.filter((g) => g.id === id);
      }
      let views = groups.map((g) => viewGroup(host, g));
      if (opts.notViable) views = views.filter((v) => !v.viable);
      if (opts.vfio) views = views.filter((v) => v.group.devices.some((b) => isVfioBound(deviceOf(host, b))));

      const names = loadPciNames(s.fs);
      if (s.json) {
        s.printJson({ iommuPresent: host.iommuPresent, groups: views.map((v) => groupJson(host, v, names)) });
        return;
      }
      if (!host.iommuPresent) {
        const cmdline = s.fs.read(PROC_CMDLINE) ?? '';
        const off = /\b(intel_iommu=off|amd_iommu=off|iommu=off)\b/.exec(cmdline)?.[1];
        s.print(
          off
            ? `No IOMMU groups: the IOMMU is disabled on the kernel command line (${off}).`
            : 'No IOMMU groups: the IOMMU is off in firmware or on the kernel command line, or this machine has none.\n' +
                'hint: enable VT-d/AMD-Vi in firmware and boot with intel_iommu=on (Intel) or amd_iommu=on (AMD).',
        );
        return;
      }
      if (views.length === 0) {
        s.print('No matching IOMMU groups.');
        return;
      }
      s.print(ctx.isTTY ? await renderGroupsBoxed(host, views, names, s.chalk) : renderGroups(host, views, names, s.chalk));
    });
}
