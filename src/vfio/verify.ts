/**
 * `reset-plan --verify`: the plan's hot-reset prediction against the kernel's own
 * VFIO_DEVICE_GET_PCI_HOT_RESET_INFO answer. Pure. A difference is reported field by field,
 * so a kernel that behaves differently from kernel.md §5 shows exactly where.
 */
import type { Bdf } from '../model/address.js';
import type { HotResetPlan } from '../plan/reset-plan.js';

/** What the kernel answered: the affected devices with their groups, or an errno. */
export type KernelAnswer = { ok: true; devices: { bdf: Bdf; group: number | null }[] } | { ok: false; errno: string };

export interface Difference {
  /** `answer`, `devices[BDF]`, `group[BDF]` or `groups`. */
  field: string;
  plan: string;
  kernel: string;
}

/**
 * The answer the plan predicts for INFO from this device (kernel.md §5.9): ENODEV without a
 * slot or bus reset; in group mode EPERM when an affected device has no IOMMU group;
 * otherwise the affected devices.
 */
export function predictedAnswer(plan: HotResetPlan, mode: 'group' | 'cdev'): KernelAnswer {
  if (plan.scope === 'none') return { ok: false, errno: 'ENODEV' };
  if (mode === 'group' && plan.affected.some((a) => a.group === null)) return { ok: false, errno: 'EPERM' };
  return { ok: true, devices: plan.affected.map((a) => ({ bdf: a.bdf, group: a.group })) };
}

const describe = (a: KernelAnswer) => (a.ok ? `${a.devices.length} device${a.devices.length === 1 ? '' : 's'}` : a.errno);
const groupText = (g: number | null | undefined) => (g === null || g === undefined ? 'none' : String(g));

/** Differences between the predicted and the kernel's answer; [] means verified. Order-insensitive (the kernel's list order is its enumeration order). */
export function compareAnswers(predicted: KernelAnswer, kernel: KernelAnswer): Difference[] {
  if (!predicted.ok || !kernel.ok) {
    if (!predicted.ok && !kernel.ok && predicted.errno === kernel.errno) return [];
    return [{ field: 'answer', plan: describe(predicted), kernel: describe(kernel) }];
  }
  const out: Difference[] = [];
  const mine = new Map(predicted.devices.map((d) => [d.bdf, d.group]));
  const theirs = new Map(kernel.devices.map((d) => [d.bdf, d.group]));
  const all = [...new Set([...mine.keys(), ...theirs.keys()])].sort();
  for (const bdf of all) {
    if (!theirs.has(bdf)) out.push({ field: `devices[${bdf}]`, plan: 'affected', kernel: 'not listed' });
    else if (!mine.has(bdf)) out.push({ field: `devices[${bdf}]`, plan: 'not listed', kernel: 'affected' });
    else if (mine.get(bdf) !== theirs.get(bdf)) out.push({ field: `group[${bdf}]`, plan: groupText(mine.get(bdf)), kernel: groupText(theirs.get(bdf)) });
  }
  const groups = (a: Map<Bdf, number | null>) => [...new Set([...a.values()].filter((g): g is number => g !== null))].sort((x, y) => x - y).join(',');
  if (groups(mine) !== groups(theirs)) out.push({ field: 'groups', plan: groups(mine) || 'none', kernel: groups(theirs) || 'none' });
  return out;
}
