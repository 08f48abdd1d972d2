/**
 * Predicts what a VFIO hot reset of a device would touch and whether it can succeed
 * (kernel.md §5, §6). Pure: a scanned Host, the slots, and an in-use predicate in; plans out.
 */
import { bdfParts, busOf, compareBdf, type Bdf } from '../model/address.js';
import { isVfioBound } from '../model/host.js';
import { noBusResetQuirk } from '../model/quirks.js';
import type { Host, PciDevice, PciSlot } from '../model/types.js';
import { iommufdHotReset, type IommufdAnswer, type IommufdFacts } from './iommufd-reset.js';

/** true/false, or the ways the host uses the device ([] = not in use). */
export type InUsePredicate = (bdf: Bdf) => boolean | readonly string[];

export type HotResetScope = 'slot' | 'bus' | 'none';

export type BlockerCode =
  | 'no-hot-reset' // neither slot nor bus reset: INFO fails with ENODEV
  | 'vf-caller' // the caller is a VF: singleton dev_set
  | 'root-bus-caller' // the caller is on a root bus: singleton dev_set
  | 'bridge' // a bridge in scope can never join the dev_set
  | 'not-vfio' // on a host driver or unbound
  | 'other-dev-set' // vfio-bound (or bindable) but keyed to another dev_set
  | 'no-group'; // INFO fails with EPERM in group mode

export interface Blocker {
  bdf: Bdf;
  code: BlockerCode;
  reason: string;
}

export interface AffectedDevice {
  bdf: Bdf;
  group: number | null;
  driver: string | null;
  bridge: boolean;
  inUse: boolean;
  /** How the host uses it, when the predicate says. */
  inUseBy: string[];
  vf: boolean;
  vfio: boolean;
}

/** Why the scope is what it is, as a stable word (JSON `reasonCode`). */
export type ScopeReasonCode = 'slot-reset' | 'bus-reset' | 'vf-virtual-bus' | 'root-bus' | 'no-bus-reset-quirk';

/** What would have to change, as a stable word (JSON `changeCode`); null when ready. */
export type ChangeCode = 'no-hot-reset' | 'not-callable' | 'bridge-in-scope' | 'vf-in-scope' | 'call-from-other-device' | 'bind-and-assign';

export interface HotResetPlan {
  scope: HotResetScope;
  reason: string;
  reasonCode: ScopeReasonCode;
  /** Upstream bridge of the reset bus (the slot's bridge for a slot reset); null on a root bus. */
  bridge: Bdf | null;
  /** Slot name for a slot reset. */
  slot: string | null;
  affected: AffectedDevice[];
  /** IOMMU groups a VFIO user must hold open for VFIO_DEVICE_PCI_HOT_RESET. */
  groups: number[];
  ready: boolean;
  blockers: Blocker[];
  /** What would have to change for the reset to work; null when ready. */
  change: string | null;
  changeCode: ChangeCode | null;
  /** Some blocker cannot be fixed by binding devices or assigning groups. */
  impossible: boolean;
  /** The same reset through an iommufd context with an empty group list (src/plan/iommufd-reset.ts). */
  iommufd: IommufdAnswer;
}

export interface ResetPlan {
  device: Bdf;
  group: number | null;
  resetMethods: string[];
  /** Whether `reset_method` exists at all. */
  resetMethodKnown: boolean;
  functionReset: boolean;
  functionResetMethods: string[];
  hotReset: HotResetPlan;
}

/** Which pre/post 7.1 slot numbering the plans used (kernel.md §5.3). */
export interface SlotReading {
  reading: 'device-number' | 'whole-bus';
  kernelRelease: string | null;
  /** The release was unknown, so the older reading was assumed. */
  assumed: boolean;
  text: string;
}

export interface PlanInput {
  host: Host;
  slots: readonly PciSlot[];
  inUse: InUsePredicate;
  /** What the tree shows about cdevs and their holders; without it the iommufd answer is unavailable. */
  iommufd?: IommufdFacts;
}

/** Hotplug drivers that implement reset_slot (kernel.md §5.1). */
const SLOT_RESET_DRIVERS: ReadonlySet<string> = new Set(['pciehp', 'pnv_php', 's390_pci_hpc']);
/** Reset methods that are not function-level (kernel.md §6.1). */
const BUS_METHODS: ReadonlySet<string> = new Set(['bus', 'cxl_bus']);

export function slotReadingFor(release: string | null): SlotReading {
  const m = release ? /^(\d+)\.(\d+)/.exec(release) : null;
  if (!m) {
    return { reading: 'device-number', kernelRelease: release, assumed: true,
      text: 'kernel release unknown: assumed the pre-7.1 reading (a pciehp slot holds only device number 0)' };
  }
  const [major, minor] = [Number(m[1]), Number(m[2])];
  const whole = major > 7 || (major === 7 && minor >= 1);
  return whole
    ? { reading: 'whole-bus', kernelRelease: release, assumed: false, text: `kernel ${release} (7.1 or later): a pciehp slot holds every device on its bus` }
    : { reading: 'device-number', kernelRelease: release, assumed: false, text: `kernel ${release} (before 7.1): a pciehp slot holds only device number 0 on its bus` };
}

const listWords = (items: readonly (string | number)[]) =>
  items.length <= 1 ? items.join('') : `${items.slice(0, -1).join(', ')} and ${items[items.length - 1]}`;

/** Topology queries shared by every plan of one host. */
class Topology {
  private readonly byBus = new Map<string, PciDevice[]>();
  readonly reading: SlotReading;

  constructor(readonly host: Host, readonly slots: readonly PciSlot[]) {
    this.reading = slotReadingFor(host.kernelRelease);
    for (const d of host.devices.values()) {
      const key = busOf(d.bdf);
      (this.byBus.get(key) ?? this.byBus.set(key, []).get(key)!).push(d);
    }
    // Kernel list order: functions in devfn order as scanned, VFs appended when created.
    for (const list of this.byBus.values()) list.sort((a, b) => Number(a.physfn !== null) - Number(b.physfn !== null) || compareBdf(a.bdf, b.bdf));
  }

  device(bdf: Bdf): PciDevice | undefined {
    return this.host.devices.get(bdf);
  }

  /** VF whose bus number differs from its PF's: a virtual bus with no bridge (kernel.md §1.2). */
  onVirtualBus(d: PciDevice): boolean {
    return d.physfn !== null && busOf(d.physfn) !== busOf(d.bdf);
  }

  /** The bridge that owns the device's bus; null on a root bus or a VF virtual bus. */
  upstream(d: PciDevice): Bdf | null {
    if (d.parent === null || this.onVirtualBus(d)) return null;
    const p = this.device(d.parent);
    if (p?.secondaryBus != null && p.secondaryBus !== bdfParts(d.bdf).bus) return null;
    return d.parent;
  }

  /** Functions on the bus `dddd:bb`, in the kernel's list order. */
  busDevices(bus: string): PciDevice[] {
    return this.byBus.get(bus) ?? [];
  }

  /** The bus a bridge owns: `secondary_bus_number`, or where its non-VF children sit. */
  subordinate(bridge: PciDevice): string | null {
    const domain = busOf(bridge.bdf).slice(0, -3);
    if (bridge.secondaryBus !== null && bridge.secondaryBus > 0) return `${domain}:${bridge.secondaryBus.toString(16).padStart(2, '0')}`;
    for (const d of this.host.devices.values()) if (d.parent === bridge.bdf && !this.onVirtualBus(d)) return busOf(d.bdf);
    return null;
  }

  /** pci_walk_bus(): the bus in list order, each bridge followed by its subordinate bus. */
  walk(bus: string, seen = new Set<string>()): PciDevice[] {
    if (seen.has(bus)) return [];
    seen.add(bus);
    const out: PciDevice[] = [];
    for (const d of this.busDevices(bus)) {
      out.push(d);
      if (!d.bridge) continue;
      const sub = this.subordinate(d);
      if (sub !== null) out.push(...this.walk(sub, seen));
    }
    return out;
  }

  /** The slot a function belongs to (pci_dev_assign_slot), by the kernel's numbering. */
  slotOf(d: PciDevice): PciSlot | undefined {
    const p = bdfParts(d.bdf);
    const matches = this.slots.filter((s) => s.domain === p.domain && s.bus === p.bus &&
      (s.number === p.device || (this.reading.reading === 'whole-bus' && s.hotplugDriver === 'pciehp' && s.number === 0)));
    // An ACPI slot and the hotplug driver's slot with one number are one kernel object.
    return matches.find((s) => s.hotplugDriver !== null && SLOT_RESET_DRIVERS.has(s.hotplugDriver)) ?? matches[0];
  }

  /** The first device with the NO_BUS_RESET quirk among the bridge and the given devices. */
  quirked(bridge: Bdf | null, devices: readonly PciDevice[]): { bdf: Bdf; what: string } | undefined {
    const b = bridge === null ? undefined : this.device(bridge);
    for (const d of b ? [b, ...devices] : devices) {
      const what = noBusResetQuirk(d.vendorId, d.deviceId);
      if (what) return { bdf: d.bdf, what };
    }
    return undefined;
  }

  /** vfio_pci_dev_below_slot(): the device's ancestor on the slot's bus belongs to the slot. */
  belowSlot(d: PciDevice, slot: PciSlot): boolean {
    for (let cur: PciDevice | undefined = d, n = 0; cur && n < 64; n++) {
      const p = bdfParts(cur.bdf);
      if (p.domain === slot.domain && p.bus === slot.bus) return this.slotOf(cur)?.name === slot.name;
      const up = this.upstream(cur);
      cur = up === null ? undefined : this.device(up);
    }
    return false;
  }

  slotDevices(slot: PciSlot, bus: string): PciDevice[] {
    return this.walk(bus).filter((d) => this.belowSlot(d, slot));
  }

  /** pci_probe_reset_slot() == 0 for the device's slot. */
  slotCanReset(d: PciDevice): PciSlot | undefined {
    const slot = this.slotOf(d);
    if (!slot || slot.hotplugDriver === null || !SLOT_RESET_DRIVERS.has(slot.hotplugDriver)) return undefined;
    return this.quirked(this.upstream(d), this.slotDevices(slot, busOf(d.bdf))) ? undefined : slot;
  }

  /** vfio-pci's dev_set key for the device if it were bound (kernel.md §5.6). */
  devSetKey(d: PciDevice): string {
    if (d.physfn !== null || this.upstream(d) === null) return `device ${d.bdf}`;
    const slot = this.slotCanReset(d);
    return slot ? `slot ${slot.name}` : `bus ${busOf(d.bdf)}`;
  }
}

interface Scope {
  scope: HotResetScope;
  reason: string;
  reasonCode: ScopeReasonCode;
  bridge: Bdf | null;
  slot: PciSlot | null;
  devices: PciDevice[];
}

function decideScope(t: Topology, d: PciDevice): Scope {
  const bridge = t.upstream(d);
  const bus = busOf(d.bdf);
  const slot = t.slotOf(d);
  let slotNote = '';
  if (slot) {
    const driver = slot.hotplugDriver;
    if (driver !== null && SLOT_RESET_DRIVERS.has(driver)) {
      const devices = t.slotDevices(slot, bus);
      const q = t.quirked(bridge, devices);
      if (!q) {
        return { scope: 'slot', reasonCode: 'slot-reset', bridge, slot, devices,
          reason: `slot reset: ${d.bdf} is in hotplug slot "${slot.name}" driven by ${driver}, which can reset the slot; only the slot's devices are reset (${t.reading.text})` };
      }
      slotNote = `; slot "${slot.name}" cannot reset because ${q.bdf} (${q.what}) has the NO_BUS_RESET quirk`;
    } else {
      slotNote = `; slot "${slot.name}" is driven by ${driver ?? 'an unknown hotplug driver (no module link, no pciehp port service)'}, which cannot reset slots, so the kernel falls back to a bus reset`;
    }
  } else {
    // Pre-7.1 pciehp: functions beyond device 0 are outside the slot and use the bus (§5.3).
    const p = bdfParts(d.bdf);
    const pciehp = t.slots.find((s) => s.domain === p.domain && s.bus === p.bus && s.hotplugDriver === 'pciehp');
    if (pciehp) slotNote = `; ${d.bdf} is not in pciehp slot "${pciehp.name}" because its device number is not 0 (${t.reading.text})`;
  }
  if (bridge === null) {
    const why = t.onVirtualBus(d)
      ? `${d.bdf} is a VF on a virtual bus, which has no bridge to reset it`
      : `${d.bdf} is on the root bus (${d.rootBus}), which has no upstream bridge to reset it`;
    return { scope: 'none', reasonCode: t.onVirtualBus(d) ? 'vf-virtual-bus' : 'root-bus', bridge, slot: null, devices: [], reason: `no hot reset: ${why}${slotNote}; the kernel answers ENODEV` };
  }
  const devices = t.walk(bus);
  const q = t.quirked(bridge, devices);
  if (q) {
    const where = q.bdf === bridge ? 'the bridge' : q.bdf === d.bdf ? 'the device itself' : 'a device on or below the bus';
    return { scope: 'none', reasonCode: 'no-bus-reset-quirk', bridge, slot: null, devices: [],
      reason: `no hot reset: ${where} ${q.bdf} (${q.what}) has the kernel's NO_BUS_RESET quirk, so bus ${bus} below ${bridge} cannot be reset${slotNote}; the kernel answers ENODEV` };
  }
  return { scope: 'bus', reasonCode: 'bus-reset', bridge, slot: null, devices,
    reason: `bus reset: secondary bus reset of bus ${bus} below bridge ${bridge}, hitting everything on that bus and below it${slotNote}` };
}

function affectedEntry(t: Topology, d: PciDevice, inUse: InUsePredicate): AffectedDevice {
  const use = inUse(d.bdf);
  const by = Array.isArray(use) ? [...(use as readonly string[])] : [];
  return {
    bdf: d.bdf,
    group: d.iommuGroup,
    driver: d.driver,
    bridge: d.bridge,
    inUse: Array.isArray(use) ? by.length > 0 : use === true,
    inUseBy: by,
    vf: d.physfn !== null,
    vfio: isVfioBound(d),
  };
}

function blockersFor(t: Topology, d: PciDevice, s: Scope, affected: readonly AffectedDevice[]): Blocker[] {
  if (s.scope === 'none') return [{ bdf: d.bdf, code: 'no-hot-reset', reason: 'neither a slot nor a bus reset is possible, so the kernel answers ENODEV' }];
  const out: Blocker[] = [];
  const singleton = d.physfn !== null || t.upstream(d) === null;
  if (d.physfn !== null) out.push({ bdf: d.bdf, code: 'vf-caller', reason: 'a VF gets a reset set (dev_set) of its own, so VFIO_DEVICE_PCI_HOT_RESET called from it fails with EINVAL' });
  else if (t.upstream(d) === null) out.push({ bdf: d.bdf, code: 'root-bus-caller', reason: 'a root-bus device gets a reset set (dev_set) of its own, so VFIO_DEVICE_PCI_HOT_RESET called from it fails with EINVAL' });
  const key = t.devSetKey(d);
  for (const a of affected) {
    const dev = t.device(a.bdf)!;
    if (a.bridge) {
      out.push({ bdf: a.bdf, code: 'bridge', reason: `bridge${a.driver ? ` on ${a.driver}` : ''} in the reset scope; bridges cannot be bound to vfio-pci, so the kernel refuses (EINVAL)` });
      continue;
    }
    if (!a.vfio) {
      const use = a.inUse ? `; the host is using it${a.inUseBy.length ? ` (${a.inUseBy.join('; ')})` : ''}` : '';
      out.push({ bdf: a.bdf, code: 'not-vfio', reason: `${a.driver ? `on host driver ${a.driver}` : 'not bound to any driver'}, not vfio-pci or a variant${use}` });
    }
    // Devices below a bridge are already out of reach; the dev_set question is for T's own bus.
    if (!singleton && !d.bridge && a.bdf !== d.bdf && busOf(a.bdf) === busOf(d.bdf)) {
      const other = t.devSetKey(dev);
      if (other !== key) {
        const why = dev.physfn !== null ? 'it is a VF, which gets a reset set of its own'
          : `it would be in the reset set of ${other} while ${d.bdf} is in that of ${key}`;
        out.push({ bdf: a.bdf, code: 'other-dev-set', reason: `in the reset scope but not in ${d.bdf}'s reset set: ${why}, so the kernel refuses (EINVAL)` });
      }
    }
    if (a.group === null) out.push({ bdf: a.bdf, code: 'no-group', reason: 'has no IOMMU group, so the INFO ioctl fails with EPERM in group mode' });
  }
  return out;
}

/** The stable word for changeFor's sentence (the same decision order). */
function changeCodeFor(t: Topology, plan: Omit<HotResetPlan, 'change' | 'changeCode' | 'impossible' | 'iommufd'>): ChangeCode | null {
  if (plan.ready) return null;
  const codes = new Set(plan.blockers.map((b) => b.code));
  if (codes.has('no-hot-reset')) return 'no-hot-reset';
  if (codes.has('vf-caller') || codes.has('root-bus-caller')) return 'not-callable';
  if (codes.has('bridge')) return 'bridge-in-scope';
  if (plan.blockers.some((b) => b.code === 'other-dev-set' && t.device(b.bdf)?.physfn)) return 'vf-in-scope';
  if (codes.has('other-dev-set')) return 'call-from-other-device';
  return 'bind-and-assign';
}

/** Words for what would have to change; null when nothing has to. */
function changeFor(t: Topology, d: PciDevice, plan: Omit<HotResetPlan, 'change' | 'changeCode' | 'impossible' | 'iommufd'>, functionMethods: readonly string[]): string | null {
  if (plan.ready) return null;
  const fallback = functionMethods.length
    ? `vfio-pci still resets ${d.bdf} alone with ${functionMethods.join('/')} on open and close`
    : `${d.bdf} has no function reset either, so vfio-pci cannot reset it at all`;
  const codes = new Set(plan.blockers.map((b) => b.code));
  if (codes.has('no-hot-reset')) return `nothing can make a hot reset possible here; ${fallback}`;
  if (codes.has('vf-caller') || codes.has('root-bus-caller')) return `a hot reset cannot be called from ${d.bdf}; ${fallback}`;
  if (codes.has('bridge')) {
    const bridges = plan.blockers.filter((b) => b.code === 'bridge').map((b) => b.bdf);
    return `no binding can fix this: the reset would also hit bridge${bridges.length > 1 ? 's' : ''} ${listWords(bridges)}; ${fallback}`;
  }
  const vfs = plan.blockers.filter((b) => b.code === 'other-dev-set' && t.device(b.bdf)?.physfn).map((b) => b.bdf);
  if (vfs.length) {
    return `no binding can fix this: the reset also hits VF${vfs.length > 1 ? 's' : ''} ${listWords(vfs)}, which each have a reset set of their own (with SR-IOV disabled on the PF it would not); ${fallback}`;
  }
  if (codes.has('other-dev-set')) {
    const slotDevice = plan.affected.find((a) => t.device(a.bdf) && t.slotCanReset(t.device(a.bdf)!));
    const hint = slotDevice ? `call the hot reset from ${slotDevice.bdf} (in the slot) instead` : 'call the hot reset from a device whose reset set covers the whole scope';
    return `${hint}; ${fallback}`;
  }
  const steps: string[] = [];
  if (codes.has('no-group')) steps.push('enable the IOMMU so every affected device has a group');
  const unbound = plan.blockers.filter((b) => b.code === 'not-vfio').map((b) => b.bdf);
  if (unbound.length) {
    const busy = plan.affected.filter((a) => unbound.includes(a.bdf) && a.inUse).map((a) => a.bdf);
    const stop = busy.length ? `stop the host using ${listWords(busy)}, then ` : '';
    steps.push(`${stop}bind ${listWords(unbound)} to vfio-pci${unbound.includes(d.bdf) ? '' : ' too'}`);
  }
  if (plan.groups.length === 1) steps.push(`assign group ${plan.groups[0]} to the VM`);
  else if (plan.groups.length > 1) steps.push(`assign groups ${listWords(plan.groups)} to the same VM`);
  return steps.join(', then ');
}

const STRUCTURAL: ReadonlySet<BlockerCode> = new Set(['no-hot-reset', 'vf-caller', 'root-bus-caller', 'bridge', 'other-dev-set', 'no-group']);

const NOT_LOOKED: IommufdAnswer = { available: false, unavailableReason: 'the cdev interface was not looked at', open: [], ready: false, ownedFlag: false, info: [], blockers: [] };

function planOne(t: Topology, d: PciDevice, inUse: InUsePredicate, facts: IommufdFacts | undefined): ResetPlan {
  const functionResetMethods = d.resetMethods.filter((m) => !BUS_METHODS.has(m));
  const s = decideScope(t, d);
  const affected = s.devices.map((x) => affectedEntry(t, x, inUse));
  const groups = [...new Set(affected.map((a) => a.group).filter((g): g is number => g !== null))].sort((a, b) => a - b);
  const blockers = blockersFor(t, d, s, affected);
  const base = { scope: s.scope, reason: s.reason, reasonCode: s.reasonCode, bridge: s.bridge, slot: s.slot?.name ?? null, affected, groups, ready: blockers.length === 0, blockers };
  return {
    device: d.bdf,
    group: d.iommuGroup,
    resetMethods: [...d.resetMethods],
    resetMethodKnown: d.resetMethodKnown,
    functionReset: functionResetMethods.length > 0,
    functionResetMethods,
    hotReset: { ...base, change: changeFor(t, d, base, functionResetMethods), changeCode: changeCodeFor(t, base), impossible: blockers.some((b) => STRUCTURAL.has(b.code)),
      iommufd: facts ? iommufdHotReset(t.host, d.bdf, base, facts) : NOT_LOOKED },
  };
}

export interface SetReset {
  /** Set members whose hot reset this is. */
  callers: Bdf[];
  scope: HotResetScope;
  bridge: Bdf | null;
  slot: string | null;
  affected: Bdf[];
  groups: number[];
  /** Binding and group assignment could make it work (no structural blocker for some caller). */
  possible: boolean;
  /** Possible, and every group it needs belongs to the set. */
  byItself: boolean;
  outsideGroups: number[];
  /** Affected non-bridge devices whose group is not the set's (or that have none). */
  outsideDevices: Bdf[];
  /** Would succeed right now for some caller. */
  ready: boolean;
  reason: string;
  /** The scope's reasonCode, or for an impossible reset the changeCode that says why. */
  reasonCode: ScopeReasonCode | ChangeCode;
  /** The iommufd answer of the best caller (ready first), with the devices to bind taken from the set where a group allows. */
  iommufd: SetIommufd;
}

export interface SetIommufd extends IommufdAnswer {
  /** Devices of `open` that are not in the set: the VM would have to bind them too. */
  outsideDevices: Bdf[];
}

function setIommufd(host: Host, set: readonly Bdf[], a: IommufdAnswer): SetIommufd {
  // One bound device per group owns the group: prefer the set's own member of that group.
  const open = a.open.map((b, i) => {
    if (i === 0 || set.includes(b)) return b;
    const g = host.devices.get(b)?.iommuGroup;
    return set.find((x) => host.devices.get(x)?.iommuGroup === g) ?? b;
  });
  const info = a.info.map((e) => ({ bdf: e.bdf, devId: e.devId === 'not-owned' ? e.devId : open.includes(e.bdf) ? 'dev-id' as const : 'owned' as const }));
  return { ...a, open, info, outsideDevices: open.filter((b) => !set.includes(b)) };
}

export interface SetAnalysis {
  devices: Bdf[];
  /** The set's IOMMU groups: the VM owns these whole. */
  groups: number[];
  resets: SetReset[];
  /** Callers whose hot reset the set can perform by itself. */
  byItself: Bdf[];
  /** Callers whose hot reset is possible but needs groups outside the set. */
  needOutside: { device: Bdf; groups: number[]; devices: Bdf[] }[];
  /** Callers with no possible hot reset, and why. */
  impossible: { device: Bdf; reason: string; code: ScopeReasonCode | ChangeCode }[];
  assumption: string;
}

/** The set's own hot resets, merged where several members would reset the same devices. */
export function analyseSet(host: Host, plans: readonly ResetPlan[]): SetAnalysis {
  const devices = plans.map((p) => p.device);
  const groups = [...new Set(devices.map((b) => host.devices.get(b)?.iommuGroup).filter((g): g is number => g != null))].sort((a, b) => a - b);
  const merged = new Map<string, SetReset>();
  for (const p of plans) {
    const h = p.hotReset;
    const key = h.scope === 'none' ? `none ${p.device}` : `${h.scope} ${h.affected.map((a) => a.bdf).join(',')}`;
    const possible = !h.impossible;
    const outsideGroups = h.groups.filter((g) => !groups.includes(g));
    const outsideDevices = h.affected.filter((a) => !a.bridge && (a.group === null || !groups.includes(a.group))).map((a) => a.bdf);
    const prev = merged.get(key);
    if (prev) {
      prev.callers.push(p.device);
      // A reset that one member cannot call may still be callable from another.
      if (possible && !prev.possible) {
        prev.reason = h.reason;
        prev.reasonCode = h.reasonCode;
      }
      prev.possible ||= possible;
      prev.byItself = prev.possible && prev.outsideGroups.length === 0 && prev.outsideDevices.length === 0;
      prev.ready ||= h.ready;
      if (h.iommufd.ready && !prev.iommufd.ready) prev.iommufd = setIommufd(host, devices, h.iommufd);
      continue;
    }
    merged.set(key, {
      callers: [p.device],
      scope: h.scope,
      bridge: h.bridge,
      slot: h.slot,
      affected: h.affected.map((a) => a.bdf),
      groups: h.groups,
      possible,
      byItself: possible && outsideGroups.length === 0 && outsideDevices.length === 0,
      outsideGroups,
      outsideDevices,
      ready: h.ready,
      reason: h.scope === 'none' ? h.reason : possible ? h.reason : h.change ?? h.reason,
      reasonCode: h.scope === 'none' || possible ? h.reasonCode : h.changeCode ?? h.reasonCode,
      iommufd: setIommufd(host, devices, h.iommufd),
    });
  }
  const resets = [...merged.values()];
  return {
    devices,
    groups,
    resets,
    byItself: resets.filter((r) => r.byItself).flatMap((r) => r.callers),
    needOutside: resets.filter((r) => r.possible && !r.byItself).flatMap((r) => r.callers.map((device) => ({ device, groups: r.outsideGroups, devices: r.outsideDevices }))),
    impossible: resets.filter((r) => !r.possible).flatMap((r) => r.callers.map((device) => ({ device, reason: r.reason, code: r.reasonCode }))),
    assumption: 'the VM owns every group of the set whole, with every member bound to vfio-pci or a variant',
  };
}

export interface ResetPlans {
  plans: ResetPlan[];
  slotReading: SlotReading;
  set: SetAnalysis | null;
}

/** Plans for the given devices; a set analysis when there are several. */
export function planResets(input: PlanInput, bdfs: readonly Bdf[]): ResetPlans {
  const t = new Topology(input.host, input.slots);
  const plans = bdfs.map((b) => {
    const d = input.host.devices.get(b);
    if (!d) throw new Error(`device ${b} is not in the scan`);
    return planOne(t, d, input.inUse, input.iommufd);
  });
  return { plans, slotReading: t.reading, set: plans.length > 1 ? analyseSet(input.host, plans) : null };
}
