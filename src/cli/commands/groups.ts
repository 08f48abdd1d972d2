import type { Command } from 'commander';
import { isDriverName, quoteShort } from '../../model/names.js';
import { notFound, usageError } from '../../errors.js';
import { groupOf, isVfioBound, deviceOf, mismatchAdvice, overrideMismatch } from '../../model/host.js';
import { scanHost } from '../../sysfs/scan.js';
import { resolveSelector } from '../../sysfs/selectors.js';
import { PROC_CMDLINE } from '../../sysfs/paths.js';
import { openSession, type CliContext } from '../context.js';
import { vfioNodeReader } from '../../sysfs/vfio-nodes.js';
import { groupJson, renderGroups, renderGroupsTable, viewGroup } from '../render/groups.js';
import { noIommuMessage } from '../first-minute.js';
import { LazyArray } from '../render/json-stream.js';

/**
 * From this many PCI functions on, groups has V8 tuned for a long scan (main.ts,
 * V8_FOR_SCANS); below it, loading node:v8 costs more than the flags save.
 */
const LONG_SCAN_FUNCTIONS = 1024;

interface GroupsOptions {
  group?: string;
  device?: string;
  notViable?: boolean;
  vfio?: boolean;
  wide?: boolean;
}

/** COLUMNS when set (as ls does), else the terminal's width, else 80. */
export function terminalWidth(ctx: CliContext): number {
  const env = Number(ctx.env.COLUMNS);
  if (Number.isInteger(env) && env > 0) return env;
  const tty = ctx.terminalColumns?.();
  return tty !== undefined && tty > 0 ? tty : 80;
}

export function registerGroups(program: Command, ctx: CliContext): void {
  program
    .command('groups')
    .description('list IOMMU groups, their devices, and whether each group is viable for VFIO')
    .option('--group <n>', 'only this group')
    .option('--device <selector>', 'only the group holding this device (address, interface or block device)')
    .option('--not-viable', 'only groups that are not viable')
    .option('--vfio', 'only groups with a device bound to vfio-pci or a variant')
    .option('--wide', 'on a terminal, never shorten names to fit its width')
    .option('--json', 'print JSON (see vfioctl(8), JSON OUTPUT)')
    .action(async (opts: GroupsOptions, cmd: Command) => {
      const s = openSession(ctx, cmd);
      // The table shows no reset methods, NUMA node, boot VGA or bus numbers: not read for it.
      const host = scanHost(s.fs, { lean: !s.json, onListed: (n) => n >= LONG_SCAN_FUNCTIONS && ctx.tuneForLongScan?.(s.fs) });
      let groups = host.groups;
      if (opts.group !== undefined) {
        if (!/^\d+$/.test(opts.group)) throw usageError(`invalid group ${quoteShort(opts.group)}`, 'a group is a non-negative number');
        const g = groupOf(host, Number(opts.group));
        if (!g) throw notFound(`group ${opts.group}`, 'no such IOMMU group', "run 'vfioctl groups' to list groups", 'no-such-group');
        groups = [g];
      }
      if (opts.device !== undefined) {
        const [bdf] = resolveSelector(s.fs, host, opts.device);
        const id = deviceOf(host, bdf!).iommuGroup;
        if (id === null) throw notFound(`device ${bdf}`, 'has no IOMMU group', host.iommuPresent ? undefined : 'enable the IOMMU (intel_iommu=on or amd_iommu=on) and reboot', 'no-iommu-group');
        groups = groups.filter((g) => g.id === id);
      }
      let views = groups.map((g) => viewGroup(host, g));
      if (opts.notViable) views = views.filter((v) => !v.viable);
      if (opts.vfio) views = views.filter((v) => v.group.devices.some((b) => isVfioBound(deviceOf(host, b))));

      const names = s.pciNames();
      const noIommu = host.iommuPresent ? null : noIommuMessage(ctx, s.fs.root, s.fs.read(PROC_CMDLINE) ?? '');
      if (s.json) {
        const nodes = vfioNodeReader(s.fs, { wholeHost: true });
        // Each group's object is made as it is written (json-stream.ts): memory for one group, not the host.
        s.printJson({ iommuPresent: host.iommuPresent, groups: new LazyArray(views, (v) => groupJson(host, v, names, nodes)), ...(noIommu ? { hint: noIommu.hint } : {}) });
        return;
      }
      if (noIommu) {
        s.print(`${noIommu.text}\nhint: ${noIommu.hint}`);
        return;
      }
      if (views.length === 0) {
        s.print('No matching IOMMU groups.');
        return;
      }
      s.print(ctx.isTTY
        ? await renderGroupsTable(host, views, names, s.chalk, { width: terminalWidth(ctx), wide: opts.wide === true })
        : renderGroups(host, views, names, s.chalk));
      // An override that disagrees with the driver is usually a change that did not finish.
      for (const b of views.flatMap((v) => v.group.devices)) {
        const d = deviceOf(host, b);
        if (overrideMismatch(d)) s.warn(`${b}: driver_override is ${isDriverName(d.driverOverride) ? d.driverOverride : quoteShort(d.driverOverride)} but the device is ${d.driver ? `on ${d.driver}` : 'unbound'}: ${mismatchAdvice(d)}`);
      }
    });
}
