import { Option, type Command } from 'commander';
import type { Bdf } from '../../model/address.js';
import type { Host } from '../../model/types.js';
import { scanFor } from '../../sysfs/neighbourhood.js';
import { resolveSelectors } from '../../sysfs/selectors.js';
import type { FsRoot } from '../../sysfs/fsroot.js';
import { vfioHolders } from '../../sysfs/in-use.js';
import { checkTarget, probeOne, RESET_ON_OPEN_WARNING, type ProbeResult, type ProbeTarget, type Via } from '../../vfio/probe.js';
import type { Queried } from '../../vfio/query.js';
import type { VfioSys } from '../../vfio/sys.js';
import { openSession, type CliContext, type Session } from '../context.js';
import { probeDeviceJson, renderProbe } from '../render/probe.js';

/** The sysfs checks for every device, before anything is opened: a refusal changes nothing. */
export function checkTargets(fs: FsRoot, host: Host, bdfs: readonly Bdf[], via: Via | undefined): ProbeTarget[] {
  const holders = vfioHolders(fs, host);
  return bdfs.map((bdf) => checkTarget(fs, host, bdf, via, holders));
}

/**
 * Open, query and close each checked device in turn, with the reset-on-open warning on a
 * terminal first. koffi is loaded here, on first use: no other command pays for it.
 */
export async function runProbes(ctx: CliContext, s: Session, targets: readonly ProbeTarget[], query?: (sys: VfioSys, fd: number) => Queried): Promise<ProbeResult[]> {
  if (targets.length === 0) return [];
  const sys = await (ctx.vfioSys ?? (async () => (await import('../../vfio/sys.js')).loadVfioSys()))();
  if (ctx.stderrIsTTY && (await ctx.stderrIsTTY())) s.warn(`${RESET_ON_OPEN_WARNING}: ${targets.map((t) => t.bdf).join(', ')}`);
  return targets.map((t) => probeOne(s.fs, sys, t, query ? (fd) => query(sys, fd) : undefined));
}

export const viaOption = () => new Option('--via <path>', 'open through the group and a container, or the device cdev and iommufd (default: cdev when the kernel offers it)').choices(['group', 'cdev']);

export function registerProbe(program: Command, ctx: CliContext): void {
  program
    .command('probe')
    .description('ask vfio-bound devices themselves, through VFIO\'s ioctls: device info, live migration, dirty tracking, low power, hot-reset INFO')
    .argument('<selector...>', 'PCI address, interface, block device, VENDOR:DEVICE or group:N')
    .addOption(viaOption())
    .option('--json', 'print JSON (see vfioctl(8), JSON OUTPUT)')
    .addHelpText('after', `
Warning: opening a VFIO device resets it (vfio-pci resets on open and on close
where it can) and wakes it to D0. A device held open by another process (a VMM)
is refused (exit 4), never waited for or taken. Needs root (or the nodes given
with vfioctl grant).`)
    .action(async (selectors: string[], opts: { via?: Via }, cmd: Command) => {
      const s = openSession(ctx, cmd);
      const host = scanFor(s.fs, selectors, { ids: true, groups: true, peers: true, resetScope: true });
      const bdfs = resolveSelectors(s.fs, host, selectors, { ids: true, groups: true });
      const targets = checkTargets(s.fs, host, bdfs, opts.via);
      const results = await runProbes(ctx, s, targets);
      if (s.json) s.printJson({ devices: results.map((r) => probeDeviceJson(r, host)) });
      else s.print(renderProbe(results, host, s.chalk));
    });
}
