import { isVfioBound } from '../model/host.js';
import type { Host } from '../model/types.js';
import type { ResetPlan } from '../plan/reset-plan.js';
import { DEV_VFIO } from '../sysfs/paths.js';
import type { Via } from '../vfio/probe.js';
import { getHotResetInfo, type Queried } from '../vfio/query.js';
import { compareAnswers, predictedAnswer, type Difference, type KernelAnswer } from '../vfio/verify.js';
import { checkTargets, runProbes } from './commands/probe.js';
import { hotResetDevices } from './render/probe.js';
import type { CliContext, Session } from './context.js';

/** One plan's check against the kernel. */
export interface PlanCheck {
  device: string;
  verification: 'verified' | 'differs' | 'not-verifiable';
  /** Why it could not be verified (not on a vfio driver); null otherwise. */
  reason: string | null;
  via: Via | null;
  kernel: KernelAnswer | null;
  differences: Difference[];
}

/**
 * Ask the kernel's hot-reset INFO for every plan whose device is vfio-bound, through probe's
 * machinery (the same sysfs refusals first, for all of them, then one open at a time), and
 * compare. The group path is preferred where the container exists: there the kernel itself
 * names each device's group; through a cdev it names iommufd device ids and the groups come
 * from sysfs.
 */
export async function verifyPlans(ctx: CliContext, s: Session, host: Host, plans: readonly ResetPlan[], via: Via | undefined): Promise<PlanCheck[]> {
  const vfio = plans.filter((p) => {
    const d = host.devices.get(p.device);
    return d !== undefined && isVfioBound(d);
  });
  const chosen = via ?? (s.fs.lexists(`${DEV_VFIO}/vfio`) ? 'group' : undefined);
  const targets = checkTargets(s.fs, host, vfio.map((p) => p.device), chosen);
  // Only INFO is needed: no feature probes.
  const onlyInfo = (sys: Parameters<typeof getHotResetInfo>[0], fd: number): Queried => ({
    info: { argsz: 0, flags: 0, flagNames: [], regions: 0, irqs: 0, capOffset: 0, caps: [] },
    migration: null, dirtyTracking: false, lowPower: false, hotReset: getHotResetInfo(sys, fd), errors: [],
  });
  const results = new Map((await runProbes(ctx, s, targets, onlyInfo)).map((r) => [r.bdf, r]));
  return plans.map((p) => {
    const r = results.get(p.device);
    if (!r) {
      const driver = host.devices.get(p.device)?.driver ?? null;
      return { device: p.device, verification: 'not-verifiable', reason: `not on a vfio driver (${driver ?? 'no driver'}): the kernel answers INFO only for VFIO devices`, via: null, kernel: null, differences: [] };
    }
    const kernel: KernelAnswer = r.queried.hotReset.ok ? { ok: true, devices: hotResetDevices(r, host).map((d) => ({ bdf: d.bdf, group: d.group })) } : { ok: false, errno: r.queried.hotReset.errno };
    const differences = compareAnswers(predictedAnswer(p.hotReset, r.via), kernel);
    return { device: p.device, verification: differences.length ? 'differs' : 'verified', reason: null, via: r.via, kernel, differences };
  });
}
