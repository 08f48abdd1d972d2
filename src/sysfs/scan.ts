import { release } from 'node:os';
import { bdfParts, compareBdf, devfnOf, isBdf, busOf, type Bdf } from '../model/address.js';
import type { Host, IommuGroup, PciDevice } from '../model/types.js';
import { isVfioDriver, needsVfioDevCheck } from '../model/drivers.js';
import { isDriverName } from '../model/names.js';
import { resolveLinkTarget, type FsRoot } from './fsroot.js';
import { IOMMU_GROUPS, PCI_DEVICES, PCI_DRIVERS, PROC_OSRELEASE } from './paths.js';
import { vfioDevClassEntries, vfioDevsByClass } from './vfio-dev-class.js';

/** Fields of a modalias: `pci:v00008086d000010D3sv00008086sd00000000bc02sc00i00`. */
const MODALIAS = /^pci:v([0-9A-Fa-f]{8})d([0-9A-Fa-f]{8})sv([0-9A-Fa-f]{8})sd([0-9A-Fa-f]{8})bc([0-9A-Fa-f]{2})sc([0-9A-Fa-f]{2})i([0-9A-Fa-f]{2})$/;

/** The SR-IOV capability's TotalVFs register is 16 bits wide. */
const MAX_TOTAL_VFS = 0xffff;

const ROOT_BUS = /^pci[0-9a-f]{4,8}:[0-9a-f]{2}$/;

/** `0x10de` → `10de`; null when missing or malformed. */
function hexAttr(value: string | undefined, digits: number): string | null {
  if (value === undefined) return null;
  const m = /^0x([0-9a-fA-F]+)$/.exec(value.trim());
  return m ? m[1]!.toLowerCase().padStart(digits, '0').slice(-digits) : null;
}

function intAttr(value: string | undefined): number | null {
  if (value === undefined || value.trim() === '') return null;
  const n = Number.parseInt(value, 10);
  return Number.isNaN(n) ? null : n;
}

export function overrideValue(raw: string | undefined): string | null {
  if (raw === undefined) return null;
  const v = raw.trim();
  return v === '' || v === '(null)' ? null : v;
}

/**
 * Where the device's directory really is: the bus/pci/devices link resolved lexically
 * (`target`: the link's target when the caller has read it already).
 */
export function deviceDir(fs: FsRoot, bdf: Bdf, target: string | undefined = fs.readLink(`${PCI_DEVICES}/${bdf}`)): string {
  const link = `${PCI_DEVICES}/${bdf}`;
  if (target === undefined) return fs.realpath(link) ?? link;
  // The kernel's link is always ../../../devices/…; joining it by hand skips path.resolve,
  // a measurable share of a 4,096-function scan.
  return target.startsWith('../../../devices/') ? `/sys/${target.slice(9)}` : resolveLinkTarget(link, target);
}

const hex2 = (n: number) => (n < 16 ? '0' : '') + n.toString(16);

/**
 * A PF's VFs computed as the kernel places them (pci_iov_virtfn_bus/devfn): VF i has routing
 * ID PF + sriov_offset + i × sriov_stride, on the PF's domain. One read of each attribute
 * instead of a readlink per VF (15,000 of them on the bench's 16,384-function host). Null,
 * so that the links are read instead, unless every computed address is a listed function:
 * a kernel without the attributes (before 4.17), a VF removed through its `remove`
 * attribute, anything else that does not add up.
 */
function computedVirtfns(fs: FsRoot, pf: Bdf, dir: string, numVfs: number, listed: (bdf: Bdf) => boolean): Bdf[] | null {
  const offset = intAttr(fs.read(`${dir}/sriov_offset`));
  const stride = intAttr(fs.read(`${dir}/sriov_stride`));
  if (offset === null || stride === null || offset < 1 || stride < 0 || (stride === 0 && numVfs > 1)) return null;
  const { bus } = bdfParts(pf);
  const domain = pf.slice(0, pf.indexOf(':'));
  const first = devfnOf(pf) + offset;
  const vfs: Bdf[] = [];
  for (let i = 0; i < numVfs; i++) {
    const rid = first + i * stride;
    const vfBus = bus + (rid >> 8);
    if (vfBus > 0xff) return null;
    const devfn = rid & 0xff;
    const vf = `${domain}:${hex2(vfBus)}:${hex2(devfn >> 3)}.${devfn & 7}`;
    if (!listed(vf)) return null;
    vfs.push(vf);
  }
  return vfs;
}

/** A PF's VFs, from its `virtfn0`…`virtfnN-1` links (N = sriov_numvfs). */
function readVirtfns(fs: FsRoot, dir: string, numVfs: number): Bdf[] {
  const vfs: Bdf[] = [];
  for (let i = 0; i < numVfs; i++) {
    const vf = fs.linkName(`${dir}/virtfn${i}`);
    if (vf !== undefined && isBdf(vf)) vfs.push(vf);
  }
  return vfs.sort(compareBdf);
}

/**
 * What the scan already knows about a function before reading it: its PF (null: not a VF),
 * and its driver (undefined: read its own `driver` link).
 */
export interface Known {
  physfn: Bdf | null;
  driver: string | null | undefined;
  /** Whether a function is in the PCI device listing, when the caller holds it (see computedVirtfns). */
  listed?: (bdf: Bdf) => boolean;
  /** Whether the function has a vfio-dev/ entry (default: look). */
  hasVfioDev?: (bdf: Bdf, dir: string) => boolean;
}

/** /sys/devices/pciDDDD:BB/…: the root bus is the fourth segment; other segments are searched only on odd paths. */
function rootBusOf(dir: string): string | undefined {
  let slash = -1;
  for (let k = 0; k < 3 && (k === 0 || slash >= 0); k++) slash = dir.indexOf('/', slash + 1);
  if (slash >= 0) {
    const end = dir.indexOf('/', slash + 1);
    const fourth = dir.slice(slash + 1, end < 0 ? undefined : end);
    if (ROOT_BUS.test(fourth)) return fourth;
  }
  return dir.split('/').find((s) => ROOT_BUS.test(s));
}

/**
 * A host's functions share a few modaliases and reset_method values (a PF's VFs all read
 * the same), so each distinct text is parsed once per process: fewer short-lived strings
 * and arrays in a scan whose garbage collection was a tenth of its time. The results are
 * shared between devices, and the model is read-only.
 */
interface ModaliasIds {
  vendorId: string;
  deviceId: string;
  subsystemVendorId: string;
  subsystemDeviceId: string;
  classCode: string;
}
const parsedModaliases = new Map<string, ModaliasIds | null>();
const parsedResetMethods = new Map<string, readonly string[]>();
/** Bounds on the memos: a hostile tree could make every value distinct. */
const MEMO_MAX = 4096;

function idsOf(modalias: string): ModaliasIds | null {
  let ids = parsedModaliases.get(modalias);
  if (ids === undefined) {
    const m = MODALIAS.exec(modalias);
    const low4 = (s: string) => s.slice(-4).toLowerCase();
    ids = m ? { vendorId: low4(m[1]!), deviceId: low4(m[2]!), subsystemVendorId: low4(m[3]!), subsystemDeviceId: low4(m[4]!), classCode: `${m[5]}${m[6]}${m[7]}`.toLowerCase() } : null;
    if (parsedModaliases.size < MEMO_MAX) parsedModaliases.set(modalias, ids);
  }
  return ids;
}

function resetMethodsOf(raw: string): string[] {
  let methods = parsedResetMethods.get(raw);
  if (methods === undefined) {
    methods = raw.split(/\s+/).filter(Boolean);
    if (parsedResetMethods.size < MEMO_MAX) parsedResetMethods.set(raw, methods);
  }
  return methods as string[];
}

/**
 * Read one function. Missing optional attributes are null, never errors. Its PF comes from
 * the scan (`known`), so only a function not known as a VF is probed for SR-IOV: a VF has
 * no SR-IOV capability of its own.
 */
export function readDevice(fs: FsRoot, bdf: Bdf, dir: string, known: Known, lean = false): PciDevice {
  const last = dir.lastIndexOf('/');
  const parentName = dir.slice(dir.lastIndexOf('/', last - 1) + 1, last);
  const rootBus = rootBusOf(dir) ?? `pci${busOf(bdf)}`;
  const at = (name: string) => fs.read(`${dir}/${name}`);

  const modalias = at('modalias') ?? null;
  const ids = modalias === null ? null : idsOf(modalias);
  const vendorId = ids ? ids.vendorId : hexAttr(at('vendor'), 4) ?? '0000';
  const deviceId = ids ? ids.deviceId : hexAttr(at('device'), 4) ?? '0000';
  const subsystemVendorId = ids ? ids.subsystemVendorId : hexAttr(at('subsystem_vendor'), 4);
  const subsystemDeviceId = ids ? ids.subsystemDeviceId : hexAttr(at('subsystem_device'), 4);
  const classCode = ids ? ids.classCode : hexAttr(at('class'), 6) ?? '000000';

  // Header type 1 (PCI-to-PCI) and 2 (CardBus) bridges; class says so without reading config.
  const bridge = classCode.startsWith('0604') || classCode.startsWith('0609') || classCode.startsWith('0607');
  // A link whose name is not a driver name (`driver -> ../..`) is ignored: names are never paths.
  const linked = known.driver !== undefined ? undefined : fs.linkName(`${dir}/driver`);
  const driver = known.driver !== undefined ? known.driver : linked !== undefined && isDriverName(linked) ? linked : null;
  const groupName = fs.linkName(`${dir}/iommu_group`);
  const iommuGroup = groupName !== undefined && /^\d+$/.test(groupName) ? Number(groupName) : null;
  const resetRaw = lean ? undefined : at('reset_method');
  const physfn = known.physfn;
  // lstat before reading: a failing read costs an exception, more than the syscall
  // (this is the hot loop of a 4,096-function scan).
  // Bounded by the hardware: TotalVFs is a 16-bit field, and no more VFs exist than it says
  // (a garbage sriov_numvfs of 2,000,000,000 must not make the scan read that many links).
  const totalRaw = physfn === null && fs.lexists(`${dir}/sriov_totalvfs`) ? intAttr(at('sriov_totalvfs')) : null;
  const totalVfs = totalRaw === null || totalRaw < 0 || totalRaw > MAX_TOTAL_VFS ? null : totalRaw;
  const numRaw = totalVfs === null ? null : intAttr(at('sriov_numvfs'));
  const numVfs = numRaw === null || numRaw < 0 ? null : Math.min(numRaw, totalVfs!);
  const numa = lean ? null : intAttr(at('numa_node'));
  const bootVga = !lean && classCode.startsWith('03') ? at('boot_vga') : undefined;
  // vfio-dev/ tells an out-of-tree variant apart; known names need no lookup.
  const vfioFamily = isVfioDriver(driver) || (needsVfioDevCheck(driver) && (known.hasVfioDev ? known.hasVfioDev(bdf, dir) : fs.lexists(`${dir}/vfio-dev`)));

  return {
    bdf,
    vendorId,
    deviceId,
    subsystemVendorId,
    subsystemDeviceId,
    classCode,
    // Read on demand (readRevision): one file fewer per function in the hot scan.
    revision: null,
    modalias,
    driver,
    driverOverride: overrideValue(at('driver_override')),
    iommuGroup,
    parent: isBdf(parentName) ? parentName : null,
    rootBus,
    bridge,
    secondaryBus: bridge && !lean ? intAttr(at('secondary_bus_number')) : null,
    resetMethods: resetRaw === undefined ? [] : resetMethodsOf(resetRaw),
    resetMethodKnown: resetRaw !== undefined,
    physfn,
    virtfns: numVfs === null || numVfs === 0 ? [] : (known.listed && computedVirtfns(fs, bdf, dir, numVfs, known.listed)) || readVirtfns(fs, dir, numVfs),
    sriovNumVfs: numVfs,
    sriovTotalVfs: totalVfs,
    numaNode: numa === null || numa < 0 ? null : numa,
    bootVga: bootVga === undefined ? null : bootVga.trim() === '1',
    // Probed only where it explains a grouping (scanHost).
    pcie: null,
    vfioFamily,
  };
}

/**
 * Bound functions from the drivers' side: the kernel links drivers/NAME/BDF whenever it
 * links BDF/driver, and one listing per driver replaces a readlink per function (most of
 * which fail on a big host: unbound VFs). Trees captured without those links (the ghw
 * snapshots) give an empty map, and their functions' own links are read instead.
 */
function boundFunctions(fs: FsRoot): Map<Bdf, string> {
  const bound = new Map<Bdf, string>();
  for (const driver of fs.list(PCI_DRIVERS)) {
    if (!isDriverName(driver)) continue;
    for (const name of fs.list(`${PCI_DRIVERS}/${driver}`)) if (isBdf(name)) bound.set(name, driver);
  }
  return bound;
}

/**
 * Whether a function has a vfio-dev/ entry (how an out-of-tree variant driver shows itself),
 * for the functions whose driver is neither a known vfio-family nor a DMA-safe one: looked up
 * per function, or from the vfio-dev class (vfioDevsByClass) when that takes fewer lookups
 * (on the bench's 16,384-function host, 5,000 iavf-bound VFs against 5,000 vfio devices).
 */
function vfioDevLookup(fs: FsRoot, bound: ReadonlyMap<Bdf, string>): (bdf: Bdf, dir: string) => boolean {
  let byClass: ReadonlyMap<Bdf, string> | null | undefined;
  return (bdf, dir) => {
    if (byClass === undefined) {
      let checks = 0;
      for (const driver of bound.values()) if (needsVfioDevCheck(driver)) checks++;
      const entries = vfioDevClassEntries(fs);
      byClass = checks > (entries?.length ?? 0) ? vfioDevsByClass(fs, entries ?? null) : null;
    }
    return byClass !== null ? byClass.has(bdf) : fs.lexists(`${dir}/vfio-dev`);
  };
}

/** The name of a vfio-bound function's device node (`vfio0` for /dev/vfio/devices/vfio0). */
export function readVfioDevName(fs: FsRoot, bdf: Bdf): string | null {
  return fs.list(`${PCI_DEVICES}/${bdf}/vfio-dev`)[0] ?? null;
}

export function kernelRelease(fs: FsRoot): string | null {
  const fromRoot = fs.read(PROC_OSRELEASE)?.trim();
  if (fromRoot) return fromRoot;
  if (fs.root === '/') return release();
  return null;
}

/** `revision`, which the scan leaves out (only `show` needs it). */
export function readRevision(fs: FsRoot, bdf: Bdf): string | null {
  return hexAttr(fs.read(`${PCI_DEVICES}/${bdf}/revision`), 2);
}

/** PCI Express functions have link attributes; conventional PCI functions do not. */
export function hasPcieLink(fs: FsRoot, bdf: Bdf): boolean {
  return fs.lexists(`${PCI_DEVICES}/${bdf}/current_link_speed`) || fs.lexists(`${PCI_DEVICES}/${bdf}/max_link_speed`);
}

export interface ScanOptions {
  /**
   * Leave out what the groups table never shows (reset_method, numa_node, boot_vga,
   * secondary_bus_number): they read as unknown (resetMethods [], resetMethodKnown false,
   * numaNode, bootVga and secondaryBus null). Only for a Host that is drawn as that table.
   */
  lean?: boolean;
  /** Told how many entries the PCI device listing holds, before any is read. */
  onListed?: (entries: number) => void;
}

/** Scan every PCI function and IOMMU group under the root. */
export function scanHost(fs: FsRoot, opts: ScanOptions = {}): Host {
  const lean = opts.lean === true;
  // Most optional attributes are missing on most functions, and each miss is an exception
  // inside node:fs; without stack capture those cost a third of a 4,096-function scan.
  const stackLimit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  const devices = new Map<Bdf, PciDevice>();
  // VF → PF from the PFs' virtfn links. A VF's routing ID is its PF's plus a positive
  // offset, so in address order every PF is read before its VFs.
  const pfOf = new Map<Bdf, Bdf>();
  try {
    const bound = boundFunctions(fs);
    const names = fs.list(PCI_DEVICES);
    opts.onListed?.(names.length);
    let nameSet: Set<string> | undefined;
    const listed = (bdf: Bdf) => (nameSet ??= new Set(names)).has(bdf);
    const hasVfioDev = vfioDevLookup(fs, bound);
    // The directory each PF's VFs are in: the PF's own parent (pci_iov_add_virtfn gives a VF
    // its PF's parent device), which saves the scan a readlink per VF.
    const vfDirOf = new Map<Bdf, string>();
    for (const name of names) {
      if (!isBdf(name)) continue;
      const driver = bound.get(name) ?? (bound.size > 0 ? null : undefined);
      const pf = pfOf.get(name);
      const known: Known = { physfn: pf ?? null, driver, listed, hasVfioDev };
      const besidePf = pf === undefined ? undefined : vfDirOf.get(pf);
      let dir = besidePf === undefined ? deviceDir(fs, name) : `${besidePf}/${name}`;
      let d = readDevice(fs, name, dir, known, lean);
      // Every PCI function has a modalias: without one there, the VF is elsewhere (not a
      // layout the kernel makes); its link says where.
      if (besidePf !== undefined && d.modalias === null) d = readDevice(fs, name, (dir = deviceDir(fs, name)), known, lean);
      if (d.virtfns.length > 0) {
        vfDirOf.set(name, dir.slice(0, dir.lastIndexOf('/')));
        for (const vf of d.virtfns) pfOf.set(vf, name);
      }
      devices.set(name, d);
    }
  } finally {
    Error.stackTraceLimit = stackLimit;
  }
  for (const [vf, pf] of pfOf) {
    const d = devices.get(vf);
    if (!d) {
      // A link left to a VF that is gone (removed through its `remove` attribute).
      const p = devices.get(pf)!;
      devices.set(pf, { ...p, virtfns: p.virtfns.filter((b) => b !== vf) });
    } else if (d.physfn !== pf) {
      // Defensive: a VF listed before its PF (not a layout the kernel makes) still gets it.
      devices.set(vf, { ...d, physfn: pf, sriovTotalVfs: null, sriovNumVfs: null, virtfns: [] });
    }
  }

  const members = new Map<number, Bdf[]>();
  for (const d of devices.values()) {
    if (d.iommuGroup === null) continue;
    (members.get(d.iommuGroup) ?? members.set(d.iommuGroup, []).get(d.iommuGroup)!).push(d.bdf);
  }
  const groups: IommuGroup[] = [...members.entries()]
    .sort((a, b) => a[0] - b[0])
    .map(([id, bdfs]) => ({ id, devices: bdfs.sort(compareBdf) }));

  // PCIe or conventional matters only to explain a group that holds a bridge and devices
  // below it (explainGroup): only those are probed. A tree without link attributes anywhere
  // (older snapshots) cannot tell, so pcie stays null there; the host's bridges say which.
  const probe = new Set<Bdf>();
  for (const g of groups) {
    if (g.devices.length < 2) continue;
    const inGroup = new Set(g.devices);
    for (const b of g.devices) {
      const d = devices.get(b)!;
      if (d.parent !== null && inGroup.has(d.parent) && !d.bridge) probe.add(d.parent).add(b);
    }
  }
  if (probe.size > 0) {
    const pcie = new Map([...probe].map((b) => [b, hasPcieLink(fs, b)]));
    const treeShowsLinks = [...pcie.values()].some(Boolean) || [...devices.values()].some((d) => d.bridge && !pcie.has(d.bdf) && hasPcieLink(fs, d.bdf));
    if (treeShowsLinks) for (const [b, isPcie] of pcie) devices.set(b, { ...devices.get(b)!, pcie: isPcie });
  }

  // The listing is sorted as strings, which is address order unless domains differ in width.
  const keys = [...devices.keys()];
  const inOrder = keys.every((b, i) => i === 0 || compareBdf(keys[i - 1]!, b) < 0);
  const sorted = inOrder ? devices : new Map(keys.sort(compareBdf).map((b) => [b, devices.get(b)!]));
  return {
    devices: sorted,
    groups,
    iommuPresent: groups.length > 0 || fs.list(IOMMU_GROUPS).length > 0,
    kernelRelease: kernelRelease(fs),
  };
}
