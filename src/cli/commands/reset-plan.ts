import type { Command } from 'commander';
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
import { renderResetPlans, resetPlansJson } from '../render/reset-plan.js';

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
    .option('--json', 'print JSON (see vfioctl(8), JSON OUTPUT)')
    .action((selectors: string[], _opts: unknown, cmd: Command) => {
      const s = openSession(ctx, cmd);
      // The devices' reset scopes (bus, bridges, slots), not the whole host.
      const host = scanFor(s.fs, selectors, { ids: true, groups: true, resetScope: true });
      const bdfs = resolveSelectors(s.fs, host, selectors, { ids: true, groups: true });
      const use = inUseFrom(s.fs, host);
      const result = planResets({ host, slots: readSlots(s.fs, host), inUse: use.inUse, iommufd: iommufdFacts(s.fs, host, vfioHolders(s.fs, host)) }, bdfs);
      if (s.json) s.printJson(resetPlansJson(result, use.findings));
      else s.print(renderResetPlans(result, s.chalk));
    });
}
