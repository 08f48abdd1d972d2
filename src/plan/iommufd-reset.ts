/**
 * The iommufd answer to a hot reset (kernel.md §5.5, §5.7; drivers/vfio/pci/vfio_pci_core.c,
 * vfio_pci_dev_set_hot_reset() and the INFO ioctl; drivers/vfio/iommufd.c,
 * vfio_iommufd_get_dev_id()). Pure: the legacy plan, the host and what the tree shows about
 * cdevs and their holders in; the answer out.
 *
 * The kernel's rule, in short: a device opened through its cdev and bound to an iommufd context
 * calls VFIO_DEVICE_PCI_HOT_RESET with an empty group list. It succeeds when every device the
 * reset touches is in the caller's dev_set (as in group mode), and every dev_set member is
 * owned by the caller's context: bound to it, or in an IOMMU group one of whose devices is bound
 * to it (a group owned by one context cannot be claimed by another). INFO then reports, per
 * affected device, its dev_id when bound to the context, 0 (owned) when its group is, and
 * not-owned otherwise; DEV_ID_OWNED is set when no entry is not-owned.
 */
import { compareBdf, type Bdf } from '../model/address.js';
import { isVfioBound } from '../model/host.js';
import type { Host } from '../model/types.js';
import type { HotResetPlan } from './reset-plan.js';

/** How a process holds a device's VFIO interface (from /proc/PID/fd). */
export interface VfioHolder {
  pid: number;
  via: 'group' | 'cdev';
}

/** What the tree shows about the cdev interface. */
export interface IommufdFacts {
  kernelRelease: string | null;
  /** A vfio-bound device's vfio-dev/ entry: absent (pre-6.1), present without a cdev, or with one. */
  cdevOf: (bdf: Bdf) => 'no-vfio-dev' | 'no-cdev' | 'cdev';
  /** Processes holding the device's group node or cdev open now. */
  holders: (bdf: Bdf) => readonly VfioHolder[];
}

export type IommufdBlockerCode =
  | 'no-hot-reset' | 'vf-caller' | 'root-bus-caller' | 'bridge' | 'not-vfio' | 'other-dev-set'
  | 'no-group' // cannot be bound to an iommufd context at all
  | 'group-opened' // opened through its group node: the legacy path owns the group
  | 'other-iommufd'; // opened through its cdev by another process, i.e. another iommufd context

/** What INFO reports for one affected device: a dev_id (bound), 0 (owned through its group) or not-owned. */
export type DevIdAnswer = 'dev-id' | 'owned' | 'not-owned';

export interface IommufdAnswer {
  /** false: the tree shows no cdev support (or cannot tell), and the rest is empty/false. */
  available: boolean;
  unavailableReason: string | null;
  /** The fewest devices the VMM must bind to its one iommufd context (the caller first); a device still on a host driver must go to vfio-pci first (its not-vfio blocker). */
  open: Bdf[];
  /** VFIO_DEVICE_PCI_HOT_RESET with an empty group list would succeed once `open` is bound. */
  ready: boolean;
  /** VFIO_DEVICE_GET_PCI_HOT_RESET_INFO would set VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED. */
  ownedFlag: boolean;
  /** The INFO entry per affected device (empty when INFO fails with ENODEV). */
  info: { bdf: Bdf; devId: DevIdAnswer }[];
  blockers: { bdf: Bdf; code: IommufdBlockerCode; reason: string }[];
}

const CDEV_RELEASE: [number, number] = [6, 6];

function olderThanCdev(release: string | null): boolean | null {
  const m = release ? /^(\d+)\.(\d+)/.exec(release) : null;
  if (!m) return null;
  const [major, minor] = [Number(m[1]), Number(m[2])];
  return major < CDEV_RELEASE[0] || (major === CDEV_RELEASE[0] && minor < CDEV_RELEASE[1]);
}

const unavailable = (why: string): IommufdAnswer => ({ available: false, unavailableReason: why, open: [], ready: false, ownedFlag: false, info: [], blockers: [] });

/** Whether the tree shows the cdev interface; the reason when it does not (or cannot tell). */
export function cdevSupport(host: Host, facts: IommufdFacts, devices: readonly Bdf[]): string | null {
  const old = olderThanCdev(facts.kernelRelease);
  if (old === true) return `kernel ${facts.kernelRelease} is older than 6.6, which added the VFIO device cdev and the empty-list hot reset`;
  const vfio = devices.filter((b) => { const d = host.devices.get(b); return d !== undefined && isVfioBound(d); });
  const states = vfio.map((b) => ({ b, s: facts.cdevOf(b) }));
  const noDir = states.find((x) => x.s === 'no-vfio-dev');
  if (noDir) return `vfio-bound ${noDir.b} has no vfio-dev/ in this tree, so it does not show the kernel's cdev support`;
  const noCdev = states.find((x) => x.s === 'no-cdev');
  if (noCdev) return `vfio-bound ${noCdev.b} has no device cdev (vfio-dev/ without a device number): the kernel is older than 6.6 or built without CONFIG_VFIO_DEVICE_CDEV`;
  if (states.length === 0 && old === null) return 'the kernel release is unknown and no affected device is vfio-bound, so the tree does not show whether the kernel offers cdevs';
  return null;
}

const LEGACY_CODES: ReadonlySet<string> = new Set(['no-hot-reset', 'vf-caller', 'root-bus-caller', 'bridge', 'not-vfio', 'other-dev-set']);

/**
 * The iommufd answer for the hot reset called from `caller`, given its legacy plan. `open`
 * assumes a VMM with one iommufd context that binds those devices and holds nothing else.
 */
export function iommufdHotReset(host: Host, caller: Bdf, plan: Pick<HotResetPlan, 'scope' | 'affected' | 'blockers'>, facts: IommufdFacts): IommufdAnswer {
  const why = cdevSupport(host, facts, [caller, ...plan.affected.map((a) => a.bdf)]);
  if (why !== null) return unavailable(why);
  const blockers: IommufdAnswer['blockers'] = [];
  // The dev_set rules are the same as in group mode; only the group ownership differs.
  for (const b of plan.blockers) {
    if (!LEGACY_CODES.has(b.code)) continue;
    blockers.push({ bdf: b.bdf, code: b.code as IommufdBlockerCode, reason: b.reason.replace(/ in group mode$/, '') });
  }
  if (plan.scope === 'none') return { available: true, unavailableReason: null, open: [], ready: false, ownedFlag: false, info: [], blockers };

  // Bridges and devices of another reset set can never be owned; a device still on a host
  // driver could be, once bound to vfio-pci (its not-vfio blocker says so), so it is counted.
  // A VF or root-bus caller has a dev_set of its own: INFO reports every other device not owned,
  // bound to the caller's context or not (vfio_pci_fill_devs(): not in the caller's dev_set).
  const singleton = blockers.some((b) => b.bdf === caller && (b.code === 'vf-caller' || b.code === 'root-bus-caller'));
  const outside = new Set(singleton
    ? plan.affected.map((a) => a.bdf).filter((b) => b !== caller)
    : blockers.filter((b) => b.code === 'bridge' || b.code === 'other-dev-set').map((b) => b.bdf));
  const members = plan.affected.filter((a) => !outside.has(a.bdf) && !a.bridge).map((a) => a.bdf);
  // One bound device per IOMMU group makes the rest of the group owned (vfio_iommufd_get_dev_id: -ENOENT).
  const open: Bdf[] = [];
  const groupsBound = new Set<number>();
  for (const b of [caller, ...members.filter((m) => m !== caller).sort(compareBdf)]) {
    const d = host.devices.get(b);
    if (!d || d.bridge) continue;
    if (d.iommuGroup === null) {
      blockers.push({ bdf: b, code: 'no-group', reason: 'has no IOMMU group: it cannot be bound to an iommufd context (a noiommu device has no iommufd binding)' });
      continue;
    }
    if (b === caller || !groupsBound.has(d.iommuGroup)) {
      open.push(b);
      groupsBound.add(d.iommuGroup);
    }
  }

  // Who holds the devices of those groups now: the caller's cdev holder is taken to be the VMM.
  const vmm = new Set(facts.holders(caller).filter((h) => h.via === 'cdev').map((h) => h.pid));
  const seen = new Set<Bdf>();
  for (const g of groupsBound) {
    // A partial scan (reset-plan reads the reset's neighbourhood) may hold only the members it read.
    const group = host.groups.find((x) => x.id === g)?.devices ?? [...host.devices.values()].filter((d) => d.iommuGroup === g).map((d) => d.bdf);
    for (const b of group) {
      if (seen.has(b)) continue;
      seen.add(b);
      for (const h of facts.holders(b)) {
        if (h.via === 'group') {
          blockers.push({ bdf: b, code: 'group-opened', reason: `pid ${h.pid} has it open through its group node /dev/vfio/${g}: the legacy path owns group ${g}, so no iommufd context can, and group and cdev users cannot be mixed in one reset` });
        } else if (!vmm.has(h.pid)) {
          blockers.push({ bdf: b, code: 'other-iommufd', reason: `pid ${h.pid} has its cdev open${vmm.size ? `, not the process holding ${caller}` : ''}: another iommufd context owns group ${g}, so the caller's context cannot (EINVAL)` });
        }
      }
    }
  }
  const owners = new Set(blockers.filter((b) => b.code === 'group-opened' || b.code === 'other-iommufd' || b.code === 'no-group').map((b) => host.devices.get(b.bdf)?.iommuGroup ?? -1));
  const info = plan.affected.map((a) => {
    const d = host.devices.get(a.bdf);
    let devId: DevIdAnswer = 'not-owned';
    if (!outside.has(a.bdf) && a.vfio && d?.iommuGroup != null && groupsBound.has(d.iommuGroup) && !owners.has(d.iommuGroup)) devId = open.includes(a.bdf) ? 'dev-id' : 'owned';
    return { bdf: a.bdf, devId };
  });
  const ownedFlag = info.length > 0 && info.every((i) => i.devId !== 'not-owned');
  return { available: true, unavailableReason: null, open, ready: blockers.length === 0, ownedFlag, info, blockers };
}
