import { compareBdf, isBdf, type Bdf } from '../model/address.js';
import { isDriverName } from '../model/names.js';
import type { Host, IommuGroup, PciDevice } from '../model/types.js';
import type { FsRoot } from './fsroot.js';
import { IOMMU_GROUPS, PCI_DEVICES, PCI_DRIVERS, PCI_SLOTS, groupDevicesPath } from './paths.js';
import { deviceDir, hasPcieLink, kernelRelease, readDevice, scanHost } from './scan.js';
import { GROUP, VENDOR_DEVICE, resolveSelector, type SelectorOptions } from './selectors.js';

/**
 * A partial scan for commands about a few devices (`show`, `reset-plan`): instead of every
 * function of the host, it reads the devices the selectors name and their neighbourhood,
 * so its cost grows with the device's group, bus and bridges, not with the host:
 *
 * - each device, its PF (a VF's), and its bridge chain up to the root bus;
 * - `groups`: every member of the device's IOMMU group (from /sys/kernel/iommu_groups/N/devices),
 *   each with its chain and PF, so the group can be explained;
 * - `resetScope`: everything below the device's upstream bridge (its bus and the buses below:
 *   a bus reset's scope, and a slot's), or below its root bus when a slot sits on that bus.
 *
 * Every device it holds is read exactly as scanHost reads it, and every group it lists is
 * complete, so a command that only consults those gets the output of a full scan. Where
 * the neighbourhood cannot show that (a `driver` link without the drivers/ side, a VF whose
 * PF does not list it, a conventional tree without link attributes, VENDOR:DEVICE
 * selectors), it falls back to scanHost. It trusts what the kernel keeps consistent: a
 * function's own `driver` and `physfn` links, and a group's `devices` listing.
 */
export interface NeighbourhoodOptions extends SelectorOptions {
  /** The IOMMU group of each selected device, complete (show). */
  peers?: boolean;
  /** What a hot reset of each selected device would consult (reset-plan). */
  resetScope?: boolean;
}

/** Switch for tests that compare partial against full scans (false: always scanHost). */
export const partialScans = { enabled: true };

class Fallback extends Error {}

/** Most bridges followed up from one device (bridgeChain's own bound). */
const MAX_DEPTH = 66;

class Neighbourhood {
  private readonly devices = new Map<Bdf, PciDevice>();
  private readonly dirs = new Map<Bdf, string>();
  private readonly absent = new Set<Bdf>();
  private readonly loading = new Set<Bdf>();
  private readonly groups = new Map<number, Bdf[]>();
  private readonly subtrees = new Set<string>();

  constructor(private readonly fs: FsRoot) {}

  private readonly listings = new Map<Bdf, boolean>();
  /** VF → PF, from the virtfn links of the PFs loaded so far. */
  private readonly pfOfVf = new Map<Bdf, Bdf>();
  /** The bus/pci/devices links read by listed(), for deviceDir (one readlink per function, not two). */
  private readonly linkTargets = new Map<Bdf, string>();

  /** Whether scanHost would list this function (an entry under /sys/bus/pci/devices); asked once per function. */
  private listed(bdf: Bdf): boolean {
    let listed = this.listings.get(bdf);
    if (listed === undefined) {
      const link = `${PCI_DEVICES}/${bdf}`;
      const target = this.fs.readLink(link);
      if (target !== undefined) this.linkTargets.set(bdf, target);
      this.listings.set(bdf, (listed = target !== undefined || this.fs.lexists(link)));
    }
    return listed;
  }

  /** The function as scanHost reads it; undefined when it is not listed. */
  load(bdf: Bdf): PciDevice | undefined {
    const have = this.devices.get(bdf);
    if (have !== undefined) return have;
    if (this.absent.has(bdf)) return undefined;
    if (!this.listed(bdf)) {
      this.absent.add(bdf);
      return undefined;
    }
    if (this.loading.has(bdf)) throw new Fallback(); // a physfn cycle: not a kernel layout
    this.loading.add(bdf);
    const fs = this.fs;
    const dir = this.linkTargets.has(bdf) ? deviceDir(fs, bdf, this.linkTargets.get(bdf)) : deviceDir(fs, bdf);
    // scanHost takes drivers from the drivers' side; the kernel links both ways.
    const own = fs.linkName(`${dir}/driver`);
    let driver: string | null = null;
    if (own !== undefined && isDriverName(own)) {
      if (!fs.lexists(`${PCI_DRIVERS}/${own}/${bdf}`)) throw new Fallback();
      driver = own;
    }
    // scanHost takes a VF's PF from the PF's virtfn links: a loaded PF's say it without a
    // readlink (a reset scope lists PFs before their VFs); others are asked for their physfn.
    const pfName = this.pfOfVf.get(bdf) ?? fs.linkName(`${dir}/physfn`);
    let physfn: Bdf | null = null;
    if (pfName !== undefined && isBdf(pfName)) {
      const pf = this.load(pfName);
      if (pf === undefined || !pf.virtfns.includes(bdf)) throw new Fallback();
      physfn = pfName;
    }
    let d = readDevice(fs, bdf, dir, { physfn, driver, listed: (b) => this.listed(b) });
    // A link left to a VF that is gone is dropped, as scanHost drops it.
    if (d.virtfns.length > 0) {
      const present = d.virtfns.filter((vf) => this.listed(vf));
      if (present.length !== d.virtfns.length) d = { ...d, virtfns: present };
      for (const vf of present) this.pfOfVf.set(vf, bdf);
    }
    this.loading.delete(bdf);
    this.devices.set(bdf, d);
    this.dirs.set(bdf, dir);
    return d;
  }

  /** The device and its bridges up to the root bus. */
  loadWithChain(bdf: Bdf): PciDevice | undefined {
    const d = this.load(bdf);
    let p = d?.parent ?? null;
    for (let n = 0; p !== null && n < MAX_DEPTH; n++) p = this.load(p)?.parent ?? null;
    return d;
  }

  /** Every member of group `id` (each with its chain); verified against the members' own links. */
  loadGroup(id: number): Bdf[] {
    const known = this.groups.get(id);
    if (known !== undefined) return known;
    const members: Bdf[] = [];
    for (const name of this.fs.list(groupDevicesPath(id))) {
      if (!isBdf(name)) continue;
      const d = this.loadWithChain(name);
      if (d === undefined) continue;
      if (d.iommuGroup !== id) throw new Fallback();
      members.push(name);
    }
    members.sort(compareBdf);
    if (members.length > 0) this.groups.set(id, members);
    return members;
  }

  /** Every function in sysfs below `dir` (a bridge's or a root bus's directory), bridges followed down. */
  loadSubtree(dir: string, depth = 0): void {
    if (this.subtrees.has(dir) || depth > MAX_DEPTH) return;
    this.subtrees.add(dir);
    for (const name of this.fs.list(dir)) {
      if (!isBdf(name)) continue;
      const d = this.load(name);
      if (d?.bridge) this.loadSubtree(this.dirs.get(name)!, depth + 1);
    }
  }

  /** What a hot reset of `d` consults: its bus and everything below its upstream bridge (or root bus). */
  loadResetScope(d: PciDevice, slotBuses: () => Set<string>): void {
    const dir = this.dirs.get(d.bdf)!;
    const up = dir.slice(0, dir.lastIndexOf('/'));
    if (d.parent !== null) this.loadSubtree(up);
    // A root bus is walked only for a slot on it (s390's one-function root buses).
    else if (slotBuses().has(d.bdf.slice(0, d.bdf.lastIndexOf(':')))) this.loadSubtree(up);
  }

  finish(): Host {
    const fs = this.fs;
    const groups: IommuGroup[] = [...this.groups.entries()].sort((a, b) => a[0] - b[0]).map(([id, devices]) => ({ id, devices }));
    // pcie, as scanHost probes it, for the groups held (the only ones explained).
    const probe = new Set<Bdf>();
    for (const g of groups) {
      if (g.devices.length < 2) continue;
      const inGroup = new Set(g.devices);
      for (const b of g.devices) {
        const d = this.devices.get(b)!;
        if (d.parent !== null && inGroup.has(d.parent) && !d.bridge) probe.add(d.parent).add(b);
      }
    }
    if (probe.size > 0) {
      const pcie = new Map([...probe].map((b) => [b, hasPcieLink(fs, b)]));
      const shows = [...pcie.values()].some(Boolean) || [...this.devices.values()].some((d) => d.bridge && !pcie.has(d.bdf) && hasPcieLink(fs, d.bdf));
      // Whether the tree shows link attributes anywhere: without one here, only all bridges can say.
      if (!shows) throw new Fallback();
      for (const [b, isPcie] of pcie) this.devices.set(b, { ...this.devices.get(b)!, pcie: isPcie });
    }
    const devices = new Map([...this.devices.keys()].sort(compareBdf).map((b) => [b, this.devices.get(b)!]));
    const grouped = [...devices.values()].some((d) => d.iommuGroup !== null);
    return {
      devices,
      groups,
      iommuPresent: grouped || fs.list(IOMMU_GROUPS).length > 0,
      kernelRelease: kernelRelease(fs),
    };
  }
}

/** `dddd:bb` of every slot under /sys/bus/pci/slots. */
function slotBuses(fs: FsRoot): Set<string> {
  const out = new Set<string>();
  for (const name of fs.list(PCI_SLOTS)) {
    const m = /^([0-9a-f]{4,8}):([0-9a-f]{2})/i.exec(fs.read(`${PCI_SLOTS}/${name}/address`)?.trim() ?? '');
    if (m) out.add(`${m[1]!.toLowerCase()}:${m[2]!.toLowerCase()}`);
  }
  return out;
}

/**
 * The Host model a command about the devices `selectors` name needs (see Neighbourhood):
 * resolve the selectors on it as usual. The whole host when the selectors need it.
 */
export function scanFor(fs: FsRoot, selectors: readonly string[], opts: NeighbourhoodOptions = {}): Host {
  if (!partialScans.enabled) return scanHost(fs);
  const stackLimit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    const n = new Neighbourhood(fs);
    // Stands in for the host while the selectors are resolved: only membership is asked.
    const probe = { devices: { has: (b: Bdf) => n.load(b) !== undefined }, groups: [], iommuPresent: false, kernelRelease: null } as unknown as Host;
    const seeds: Bdf[] = [];
    for (const text of selectors) {
      const sel = text.trim();
      if (opts.ids && VENDOR_DEVICE.test(sel)) return scanHost(fs);
      const group = opts.groups ? GROUP.exec(sel) : null;
      if (group) {
        seeds.push(...n.loadGroup(Number(group[1])));
        continue;
      }
      try {
        seeds.push(...resolveSelector(fs, probe, text, opts));
      } catch (err) {
        if (err instanceof Fallback) throw err;
        // Reported when the command resolves the selectors on the model, as a full scan would.
      }
    }
    let buses: Set<string> | undefined;
    for (const b of seeds) {
      const d = n.loadWithChain(b)!;
      if (opts.peers && d.iommuGroup !== null && !n.loadGroup(d.iommuGroup).includes(b)) throw new Fallback();
      if (opts.resetScope) {
        n.loadResetScope(d, () => (buses ??= slotBuses(fs)));
        // The caller's whole group: who else holds it matters to the iommufd answer.
        if (d.iommuGroup !== null) n.loadGroup(d.iommuGroup);
      }
    }
    return n.finish();
  } catch (err) {
    if (err instanceof Fallback) return scanHost(fs);
    throw err;
  } finally {
    Error.stackTraceLimit = stackLimit;
  }
}
