import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/**
 * Builds sysfs trees the way the kernel lays them out: devices nested under their bridges in
 * sys/devices/pciDDDD:BB/…, relative symlinks for bus/pci/devices, driver, iommu_group,
 * kernel/iommu_groups/N/devices, physfn/virtfnN, and values printed exactly as sysfs prints
 * them (`0x10de\n`, `(null)\n`, upper-case hex in modalias).
 */
export interface DevSpec {
  bdf: string;
  /** Upstream bridge BDF; omitted or null = on a root bus. */
  parent?: string | null;
  /** `vvvv:dddd` */
  id: string;
  /** `svvv:sddd`; default `vvvv:0000`. */
  subsystem?: string;
  /** 6 hex digits. */
  class: string;
  driver?: string;
  override?: string;
  group?: number;
  /** undefined → `pm bus` for endpoints, `pm` for bridges; null → no reset_method file. */
  resetMethods?: string[] | null;
  numa?: number;
  bootVga?: boolean;
  /** VF: the PF's BDF. */
  physfn?: string;
  /** offset and stride: the kernel's sriov_offset and sriov_stride (4.17+), written when given. */
  sriov?: { total: number; num: number; offset?: number; stride?: number };
  /** Creates link attributes (PCIe function). Default true. */
  pcie?: boolean;
  secondaryBus?: number;
  subordinateBus?: number;
  /** Creates vfio-dev/<name> (bound to a vfio-family driver). */
  vfioDev?: string;
  /** With vfioDev: the kernel has a device cdev for it (6.6+ CONFIG_VFIO_DEVICE_CDEV): vfio-dev/<name>/dev. */
  cdev?: boolean;
  revision?: string;
  enable?: number;
}

export interface TreeSpec {
  devices: DevSpec[];
  /** Extra registered drivers (directories under sys/bus/pci/drivers) → module name. */
  drivers?: Record<string, string>;
  osrelease?: string;
  modulesAlias?: string;
  cmdline?: string;
  pciIds?: string;
  /** interface name → BDF */
  net?: Record<string, string>;
  /** block device name → BDF (a disk; partitions as `nvme0n1p1` → BDF nest under the disk). */
  block?: Record<string, string>;
  /** slot name → { address: 'dddd:bb:ss', module?: 'pciehp' } */
  slots?: Record<string, { address: string; module?: string }>;
  /** Create /dev/vfio/N for these groups. */
  devVfio?: number[];
}

const w = (file: string, text: string) => {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, text);
};
const link = (from: string, to: string) => {
  fs.mkdirSync(path.dirname(from), { recursive: true });
  fs.rmSync(from, { force: true });
  fs.symlinkSync(path.relative(path.dirname(from), to), from);
};
const hex8 = (h: string) => h.toUpperCase().padStart(8, '0');

/** Registers a driver directory the way the kernel shows it (module link, bind/unbind files). */
export function addDriver(root: string, name: string, module = name.replace(/-/g, '_')): void {
  const dir = path.join(root, 'sys/bus/pci/drivers', name);
  for (const f of ['bind', 'unbind', 'new_id', 'remove_id', 'uevent']) if (!fs.existsSync(path.join(dir, f))) w(path.join(dir, f), '');
  const modDir = path.join(root, 'sys/module', module);
  fs.mkdirSync(path.join(modDir, 'drivers'), { recursive: true });
  if (!fs.existsSync(path.join(dir, 'module'))) link(path.join(dir, 'module'), modDir);
  const back = path.join(modDir, 'drivers', `pci:${name}`);
  if (!fs.existsSync(back)) link(back, dir);
}

/** Absolute path of a device's directory inside the tree. */
export function deviceDir(root: string, spec: TreeSpec, bdf: string): string {
  const byBdf = new Map(spec.devices.map((d) => [d.bdf, d]));
  const chain: string[] = [];
  let cur = byBdf.get(bdf);
  if (!cur) throw new Error(`unknown device ${bdf}`);
  chain.unshift(cur.bdf);
  while (cur.parent) {
    const parent = byBdf.get(cur.parent);
    if (!parent) throw new Error(`unknown parent ${cur.parent}`);
    chain.unshift(parent.bdf);
    cur = parent;
  }
  const top = chain[0]!;
  return path.join(root, 'sys/devices', `pci${top.slice(0, top.length - 5)}`, ...chain);
}

export function buildTree(root: string, spec: TreeSpec): string {
  fs.mkdirSync(root, { recursive: true });
  w(path.join(root, 'sys/bus/pci/drivers_probe'), '');
  w(path.join(root, 'sys/bus/pci/drivers_autoprobe'), '1\n');
  fs.mkdirSync(path.join(root, 'sys/bus/pci/devices'), { recursive: true });
  fs.mkdirSync(path.join(root, 'sys/bus/pci/drivers'), { recursive: true });
  if (spec.osrelease) w(path.join(root, 'proc/sys/kernel/osrelease'), spec.osrelease + '\n');
  w(path.join(root, 'proc/cmdline'), (spec.cmdline ?? 'BOOT_IMAGE=/vmlinuz root=/dev/vda1 intel_iommu=on') + '\n');
  if (spec.modulesAlias !== undefined) w(path.join(root, 'lib/modules', spec.osrelease ?? '6.1.0-test', 'modules.alias'), spec.modulesAlias);
  if (spec.pciIds !== undefined) w(path.join(root, 'usr/share/misc/pci.ids'), spec.pciIds);
  for (const [name, module] of Object.entries(spec.drivers ?? {})) addDriver(root, name, module);

  for (const d of spec.devices) writeDevice(root, spec, d);
  // SR-IOV links both ways, once every directory exists.
  const vfIndex = new Map<string, number>();
  for (const d of spec.devices) {
    if (!d.physfn) continue;
    const n = vfIndex.get(d.physfn) ?? 0;
    vfIndex.set(d.physfn, n + 1);
    link(path.join(deviceDir(root, spec, d.bdf), 'physfn'), deviceDir(root, spec, d.physfn));
    link(path.join(deviceDir(root, spec, d.physfn), `virtfn${n}`), deviceDir(root, spec, d.bdf));
  }
  for (const [name, bdf] of Object.entries(spec.net ?? {})) {
    const ndir = path.join(deviceDir(root, spec, bdf), 'net', name);
    w(path.join(ndir, 'operstate'), 'up\n');
    link(path.join(root, 'sys/class/net', name), ndir);
  }
  for (const [name, bdf] of Object.entries(spec.block ?? {})) {
    const m = /^(nvme\d+)n\d+$/.exec(name);
    const parentDir = m ? path.join(deviceDir(root, spec, bdf), 'nvme', m[1]!) : path.join(deviceDir(root, spec, bdf), 'host0', 'target0:0:0', '0:0:0:0', 'block');
    const bdir = path.join(parentDir, name);
    fs.mkdirSync(path.join(bdir, 'holders'), { recursive: true });
    w(path.join(bdir, 'dev'), '259:0\n');
    link(path.join(root, 'sys/class/block', name), bdir);
  }
  for (const [name, s] of Object.entries(spec.slots ?? {})) {
    const sdir = path.join(root, 'sys/bus/pci/slots', name);
    w(path.join(sdir, 'address'), s.address + '\n');
    if (s.module) {
      fs.mkdirSync(path.join(root, 'sys/module', s.module), { recursive: true });
      link(path.join(sdir, 'module'), path.join(root, 'sys/module', s.module));
    }
  }
  for (const g of spec.devVfio ?? []) w(path.join(root, 'dev/vfio', String(g)), '');
  return root;
}

/** One device's directory, attributes and links, as the kernel creates them. */
function writeDevice(root: string, spec: TreeSpec, d: DevSpec): void {
  const dir = deviceDir(root, spec, d.bdf);
  const [vendor, device] = d.id.split(':') as [string, string];
  const [sv, sd] = (d.subsystem ?? `${vendor}:0000`).split(':') as [string, string];
  const bridge = /^060[479]/.test(d.class);
  w(path.join(dir, 'vendor'), `0x${vendor}\n`);
  w(path.join(dir, 'device'), `0x${device}\n`);
  w(path.join(dir, 'subsystem_vendor'), `0x${sv}\n`);
  w(path.join(dir, 'subsystem_device'), `0x${sd}\n`);
  w(path.join(dir, 'class'), `0x${d.class}\n`);
  w(path.join(dir, 'revision'), `0x${d.revision ?? '00'}\n`);
  w(path.join(dir, 'modalias'), `pci:v${hex8(vendor)}d${hex8(device)}sv${hex8(sv)}sd${hex8(sd)}bc${d.class.slice(0, 2).toUpperCase()}sc${d.class.slice(2, 4).toUpperCase()}i${d.class.slice(4, 6).toUpperCase()}\n`);
  w(path.join(dir, 'driver_override'), `${d.override ?? '(null)'}\n`);
  w(path.join(dir, 'numa_node'), `${d.numa ?? -1}\n`);
  w(path.join(dir, 'enable'), `${d.enable ?? (d.driver ? 1 : 0)}\n`);
  const methods = d.resetMethods === undefined ? (bridge ? ['pm'] : ['pm', 'bus']) : d.resetMethods;
  if (methods !== null) {
    w(path.join(dir, 'reset_method'), methods.join(' ') + '\n');
    w(path.join(dir, 'reset'), '');
  }
  if (d.pcie !== false) {
    w(path.join(dir, 'current_link_speed'), '2.5 GT/s PCIe\n');
    w(path.join(dir, 'max_link_speed'), '2.5 GT/s PCIe\n');
  }
  if (bridge) {
    const sec = d.secondaryBus ?? inferSecondary(spec, d.bdf);
    w(path.join(dir, 'secondary_bus_number'), `${sec}\n`);
    w(path.join(dir, 'subordinate_bus_number'), `${d.subordinateBus ?? inferSubordinate(spec, d.bdf, sec)}\n`);
  }
  if (d.bootVga !== undefined) w(path.join(dir, 'boot_vga'), d.bootVga ? '1\n' : '0\n');
  if (d.sriov) {
    w(path.join(dir, 'sriov_totalvfs'), `${d.sriov.total}\n`);
    w(path.join(dir, 'sriov_numvfs'), `${d.sriov.num}\n`);
    w(path.join(dir, 'sriov_drivers_autoprobe'), '1\n');
    if (d.sriov.offset !== undefined) w(path.join(dir, 'sriov_offset'), `${d.sriov.offset}\n`);
    if (d.sriov.stride !== undefined) w(path.join(dir, 'sriov_stride'), `${d.sriov.stride}\n`);
  }
  w(path.join(dir, 'remove'), '');
  link(path.join(root, 'sys/bus/pci/devices', d.bdf), dir);
  if (d.driver) {
    addDriver(root, d.driver, spec.drivers?.[d.driver]);
    link(path.join(dir, 'driver'), path.join(root, 'sys/bus/pci/drivers', d.driver));
    link(path.join(root, 'sys/bus/pci/drivers', d.driver, d.bdf), dir);
  }
  if (d.vfioDev) fs.mkdirSync(path.join(dir, 'vfio-dev', d.vfioDev), { recursive: true });
  if (d.vfioDev && d.cdev) w(path.join(dir, 'vfio-dev', d.vfioDev, 'dev'), `${511}:${d.vfioDev.replace(/\D/g, '')}\n`);
  if (d.group !== undefined) {
    const gdir = path.join(root, 'sys/kernel/iommu_groups', String(d.group));
    fs.mkdirSync(path.join(gdir, 'devices'), { recursive: true });
    if (!fs.existsSync(path.join(gdir, 'type'))) w(path.join(gdir, 'type'), 'DMA\n');
    if (!fs.existsSync(path.join(gdir, 'reserved_regions'))) w(path.join(gdir, 'reserved_regions'), '0x00000000fee00000 0x00000000feefffff msi\n');
    link(path.join(dir, 'iommu_group'), gdir);
    link(path.join(gdir, 'devices', d.bdf), dir);
  }
}

/**
 * Add devices to a built tree (VFs the fake kernel creates): `spec` must already list them
 * (paths are resolved through it); existing devices are left as they are.
 */
export function addDevices(root: string, spec: TreeSpec, devs: readonly DevSpec[]): void {
  for (const d of devs) writeDevice(root, spec, d);
  for (const d of devs) {
    if (!d.physfn) continue;
    const n = spec.devices.filter((x) => x.physfn === d.physfn).indexOf(d);
    link(path.join(deviceDir(root, spec, d.bdf), 'physfn'), deviceDir(root, spec, d.physfn));
    link(path.join(deviceDir(root, spec, d.physfn), `virtfn${n}`), deviceDir(root, spec, d.bdf));
  }
}

function inferSecondary(spec: TreeSpec, bridge: string): number {
  const child = spec.devices.find((d) => d.parent === bridge && !d.physfn);
  return child ? parseInt(child.bdf.slice(-7, -5), 16) : 0;
}

function inferSubordinate(spec: TreeSpec, bridge: string, secondary: number): number {
  let max = secondary;
  const below = (b: string): void => {
    for (const d of spec.devices.filter((x) => x.parent === b)) {
      max = Math.max(max, parseInt(d.bdf.slice(-7, -5), 16));
      below(d.bdf);
    }
  };
  below(bridge);
  return max;
}

/** A fresh temporary directory; removed by the returned cleanup unless KEEP_FIXTURE is set. */
export function tempRoot(prefix = 'vfioctl-test-'): { root: string; cleanup: () => void } {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  return { root, cleanup: () => (process.env.KEEP_FIXTURE ? undefined : fs.rmSync(root, { recursive: true, force: true })) };
}
