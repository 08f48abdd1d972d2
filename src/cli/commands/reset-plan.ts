import type { Command } from 'commander';
import { usageError, VfioctlError } from '../../errors.js';
import { ExitCode } from '../../exit-codes.js';
import type { Bdf } from '../../model/address.js';
import { planResets, type InUsePredicate } from '../../plan/reset-plan.js';
import type { FsRoot } from '../../sysfs/fsroot.js';
import type { Host } from '../../model/types.js';
import { hostUseChecker, vfioHolders, type HostUse } from '../../sysfs/in-use.js';
import { scanFor } from '../../sysfs/neighbourhood.js';
import { iommufdFacts } from '../../sysfs/vfio-nodes.js';
import { resolveSelectors } from '../../sysfs/selectors.js';
import { readSlots } from '../../sysfs/slots.js';
import { openSession, type CliContext } from '../context.js';
import { renderResetPlans, resetPlansJson, renderVerifications, withVerifications } from '../render/reset-plan.js';
import { verifyPlans } from '../verify-plans.js';
import { viaOption } from './probe.js';
import type { Via } from '../../vfio/probe.js';

/** The same in-use checks as `bind`, asked once per affected device: the findings, and the planner's predicate. */
function inUseFrom(fs: FsRoot, host: Host): { findings: (bdf: Bdf) => HostUse[]; inUse: InUsePredicate } {
  const check = hostUseChecker(fs, host);
  const cache = new Map<Bdf, HostUse[]>();
  const findings = (bdf: Bdf) => {
    let v = cache.get(bdf);
    if (!v) cache.set(bdf, (v = check(bdf)));
    return v;
  };
  return { findings, inUse: (bdf) => findings(bdf).map((u) => u.detail) };
}

export function registerResetPlan(program: Command, ctx: CliContext): void {
  program
    .command('reset-plan')
    .description('predict what a PCI hot reset of each device would reset, and whether VFIO can do it; several devices are planned as one VM\'s set')
    .argument('<selector...>', 'PCI address, interface, block device, VENDOR:DEVICE or group:N')
    .option('--verify', 'ask the kernel (VFIO_DEVICE_GET_PCI_HOT_RESET_INFO) for each vfio-bound device and compare: exit 1 when it differs. Opens the devices: see probe')
    .addOption(viaOption())
    .option('--json', 'print JSON (see vfioctl(8), JSON OUTPUT)')
    .action(async (selectors: string[], opts: { verify?: boolean; via?: Via }, cmd: Command) => {
      const s = openSession(ctx, cmd);
      // The devices' reset scopes (bus, bridges, slots), not the whole host.
      const host = scanFor(s.fs, selectors, { ids: true, groups: true, resetScope: true });
      const bdfs = resolveSelectors(s.fs, host, selectors, { ids: true, groups: true });
      const use = inUseFrom(s.fs, host);
      const result = planResets({ host, slots: readSlots(s.fs, host), inUse: use.inUse, iommufd: iommufdFacts(s.fs, host, vfioHolders(s.fs, host)) }, bdfs);
      if (!opts.verify) {
        if (opts.via) throw usageError('--via', 'only means something with --verify', 'add --verify, or drop --via');
        if (s.json) s.printJson(resetPlansJson(result, use.findings));
        else s.print(renderResetPlans(result, s.chalk));
        return;
      }
      const checks = await verifyPlans(ctx, s, host, result.plans, opts.via);
      if (s.json) s.printJson(withVerifications(resetPlansJson(result, use.findings), checks));
      else s.print(`${renderResetPlans(result, s.chalk)}\n\n${renderVerifications(checks, s.chalk)}`);
      const differ = checks.filter((c) => c.verification === 'differs');
      if (differ.length) throw new VfioctlError(ExitCode.FAILURE, `the kernel's hot-reset INFO differs from the plan for ${differ.map((c) => c.device).join(', ')}`, differ.flatMap((c) => c.differences.map((d) => `${c.device} ${d.field}: plan ${d.plan}, kernel ${d.kernel}`)).join('; '), 'please report it with `vfioctl snapshot` output: the kernel behaves differently from what vfioctl expects');
    });
}
