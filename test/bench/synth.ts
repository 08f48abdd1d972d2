import * as fs from 'node:fs';
import * as path from 'node:path';

/**
 * A synthetic host for the benchmark, written in the layout of test/helpers/tree.ts (devices
 * nested under their bridges, relative links for bus/pci/devices, driver, iommu_group,
 * kernel/iommu_groups/N/devices, physfn/virtfnN, values printed as sysfs prints them) but
 * in one pass: buildTree() recomputes each device's path from the whole spec, which is
 * quadratic at 4,096 functions. Each device also gets a 64-byte `config` header so lspci's
 * sysfs backend can read the same tree.
 */
export interface SynthDevice {
  bdf: string;
  parent: string | null;
  vendor: string;
  device: string;
  class: string;
  driver: string | null;
  group: number;
  physfn?: string;
  sriov?: { total: number; num: number };
  vfioDev?: string;
  multifunction?: boolean;
  secondary?: number;
  subordinate?: number;
}

const hex = (n: number, w: number) => n.toString(16).padStart(w, '0');
const bdfOf = (bus: number, dev: number, fn: number, domain = 0) => `${hex(domain, 4)}:${hex(bus, 2)}:${hex(dev, 2)}.${fn}`;

/**
 * Root ports, each with a PCIe switch (upstream port and 8 downstream ports), a dual-port
 * SR-IOV NIC below each downstream port with VFs, a GPU with its audio function on some
 * root ports, and a PCH multifunction device on the root bus. IOMMU groups as the kernel
 * would form them with ACS on the ports: ports alone; even-numbered NICs with ACS (every
 * PF and VF alone), odd-numbered NICs without it (PFs and their VFs in one group);
 * GPU and audio together; the PCH functions together. Stops at exactly `total` functions.
 */
export function synthHost(total: number): SynthDevice[] {
  const out: SynthDevice[] = [];
  let group = 0;
  // VFIO device indices, one per vfio-bound function as the kernel numbers them.
  let vfio = 0;
  const add = (d: Omit<SynthDevice, 'group'>, g: number) => {
    if (out.length < total) out.push({ ...d, group: g });
    return out.length < total;
  };
  add({ bdf: bdfOf(0, 0, 0), parent: null, vendor: '8086', device: '09a2', class: '060000', driver: null }, group++);
  const pch = group++;
  for (const [fn, dev, cls, drv] of [[0, '1b81', '060100', 'lpc_ich'], [3, '1bc8', '040300', 'snd_hda_intel'], [4, '1bc9', '0c0500', 'i801_smbus'], [5, '1bca', '0c8000', 'intel-spi']] as const) {
    add({ bdf: bdfOf(0, 0x1f, fn), parent: null, vendor: '8086', device: dev, class: cls, driver: drv, multifunction: true }, pch);
  }
  // VFs per PF chosen so that 4,096 functions need a realistic handful of root ports.
  const vfsPerPf = total > 1000 ? 30 : 2;
  let bus = 1;
  // Past 30 root ports or 255 buses (beyond 11,000 functions), the next PCI domain's root bus.
  let domain = 0;
  let k = 0;
  for (let rp = 0; out.length < total; rp++, k++) {
    if (k === 0x1e || bus + 10 > 0xff) {
      domain++;
      k = 0;
      bus = 1;
    }
    const at = (b: number, dev: number, fn: number) => bdfOf(b, dev, fn, domain);
    const port = at(0, 1 + k, 0);
    const firstBus = bus;
    if (!add({ bdf: port, parent: null, vendor: '8086', device: '347a', class: '060400', driver: 'pcieport' }, group++)) break;
    if (rp % 4 === 3) {
      // A GPU and its HDMI audio function straight below the root port.
      const gpuBus = bus++;
      const g = group++;
      add({ bdf: at(gpuBus, 0, 0), parent: port, vendor: '10de', device: '2204', class: '030000', driver: rp % 8 === 3 ? 'vfio-pci' : 'nvidia', vfioDev: rp % 8 === 3 ? `vfio${vfio++}` : undefined, multifunction: true }, g);
      add({ bdf: at(gpuBus, 0, 1), parent: port, vendor: '10de', device: '1aef', class: '040300', driver: rp % 8 === 3 ? 'vfio-pci' : 'snd_hda_intel', vfioDev: rp % 8 === 3 ? `vfio${vfio++}` : undefined, multifunction: true }, g);
      out.find((d) => d.bdf === port)!.secondary = gpuBus;
      out.find((d) => d.bdf === port)!.subordinate = gpuBus;
      continue;
    }
    const upBus = bus++;
    const up = at(upBus, 0, 0);
    add({ bdf: up, parent: port, vendor: '10b5', device: '8747', class: '060400', driver: 'pcieport' }, group++);
    const internal = bus++;
    for (let dp = 0; dp < 8 && out.length < total; dp++) {
      const down = at(internal, dp, 0);
      add({ bdf: down, parent: up, vendor: '10b5', device: '8747', class: '060400', driver: 'pcieport' }, group++);
      const nicBus = bus++;
      const acs = dp % 2 === 0;
      const shared = acs ? -1 : group++;
      const pfs: string[] = [];
      for (let fn = 0; fn < 2; fn++) {
        const pf = at(nicBus, 0, fn);
        pfs.push(pf);
        add({ bdf: pf, parent: down, vendor: '8086', device: '1572', class: '020000', driver: 'i40e', multifunction: true, sriov: { total: 64, num: vfsPerPf } }, acs ? group++ : shared);
      }
      for (let i = 0; i < vfsPerPf * 2; i++) {
        const devfn = 0x80 + i;
        const pf = pfs[i % 2]!;
        const driver = i % 3 === 0 ? 'vfio-pci' : i % 3 === 1 ? 'iavf' : null;
        add({ bdf: at(nicBus, devfn >> 3, devfn & 7), parent: down, vendor: '8086', device: '154c', class: '020000', driver, physfn: pf, vfioDev: driver === 'vfio-pci' ? `vfio${vfio++}` : undefined }, acs ? group++ : shared);
      }
      const dpDev = out.find((d) => d.bdf === down);
      if (dpDev) dpDev.secondary = dpDev.subordinate = nicBus;
    }
    const upDev = out.find((d) => d.bdf === up);
    if (upDev) {
      upDev.secondary = internal;
      upDev.subordinate = bus - 1;
    }
    const portDev = out.find((d) => d.bdf === port)!;
    portDev.secondary = firstBus;
    portDev.subordinate = bus - 1;
  }
  if (out.length !== total) throw new Error(`synthetic host has ${out.length} functions, wanted ${total}`);
  return out;
}

/** Write the tree under root (which must not exist yet or be empty). */
export function writeHost(root: string, devices: readonly SynthDevice[]): void {
  const mk = (p: string) => fs.mkdirSync(p, { recursive: true });
  const put = (p: string, text: string | Buffer) => fs.writeFileSync(p, text);
  const rel = (from: string, to: string) => fs.symlinkSync(path.relative(path.dirname(from), to), from);
  const sys = path.join(root, 'sys');
  const devicesDir = path.join(sys, 'bus/pci/devices');
  const driversDir = path.join(sys, 'bus/pci/drivers');
  const groupsDir = path.join(sys, 'kernel/iommu_groups');
  mk(devicesDir);
  mk(driversDir);
  mk(path.join(root, 'proc'));
  put(path.join(root, 'proc/cmdline'), 'BOOT_IMAGE=/vmlinuz root=/dev/sda1 intel_iommu=on iommu=pt\n');
  put(path.join(sys, 'bus/pci/drivers_probe'), '');

  const dirOf = new Map<string, string>();
  const drivers = new Set<string>();
  const groups = new Set<number>();
  const vfCount = new Map<string, number>();
  const up8 = (h: string) => h.toUpperCase().padStart(8, '0');
  for (const d of devices) {
    const parentDir = d.parent ? dirOf.get(d.parent) : path.join(sys, 'devices', `pci${d.bdf.slice(0, 7)}`);
    if (!parentDir) throw new Error(`parent ${d.parent} of ${d.bdf} comes later`);
    const dir = path.join(parentDir, d.bdf);
    dirOf.set(d.bdf, dir);
    mk(dir);
    const bridge = d.class.startsWith('0604');
    const a = (name: string, value: string) => put(path.join(dir, name), value + '\n');
    a('vendor', `0x${d.vendor}`);
    a('device', `0x${d.device}`);
    a('subsystem_vendor', `0x${d.vendor}`);
    a('subsystem_device', '0x0000');
    a('class', `0x${d.class}`);
    a('revision', '0x01');
    a('modalias', `pci:v${up8(d.vendor)}d${up8(d.device)}sv${up8(d.vendor)}sd00000000bc${d.class.slice(0, 2).toUpperCase()}sc${d.class.slice(2, 4).toUpperCase()}i${d.class.slice(4).toUpperCase()}`);
    a('driver_override', '(null)');
    a('numa_node', '-1');
    a('enable', d.driver ? '1' : '0');
    a('reset_method', bridge ? 'pm' : d.physfn ? 'flr' : 'flr bus');
    a('current_link_speed', '16.0 GT/s PCIe');
    a('max_link_speed', '16.0 GT/s PCIe');
    if (bridge) {
      a('secondary_bus_number', String(d.secondary ?? 0));
      a('subordinate_bus_number', String(d.subordinate ?? d.secondary ?? 0));
    }
    if (d.sriov) {
      a('sriov_totalvfs', String(d.sriov.total));
      a('sriov_numvfs', String(d.sriov.num));
      // The VFs below sit at devfn 0x80 + 2i + the PF's function: first VF offset 128, stride 2.
      a('sriov_offset', '128');
      a('sriov_stride', '2');
    }
    if (d.class.startsWith('03')) a('boot_vga', '0');
    // 64-byte type 0/1 header: what an unprivileged reader (and lspci -D -k) gets.
    const cfg = Buffer.alloc(64);
    cfg.writeUInt16LE(parseInt(d.vendor, 16), 0);
    cfg.writeUInt16LE(parseInt(d.device, 16), 2);
    cfg.writeUInt8(0x01, 8);
    cfg.writeUInt8(parseInt(d.class.slice(4), 16), 9);
    cfg.writeUInt8(parseInt(d.class.slice(2, 4), 16), 10);
    cfg.writeUInt8(parseInt(d.class.slice(0, 2), 16), 11);
    cfg.writeUInt8((bridge ? 1 : 0) | (d.multifunction ? 0x80 : 0), 14);
    if (bridge) {
      cfg.writeUInt8(parseInt(d.bdf.slice(5, 7), 16), 0x18);
      cfg.writeUInt8(d.secondary ?? 0, 0x19);
      cfg.writeUInt8(d.subordinate ?? 0, 0x1a);
    } else {
      cfg.writeUInt16LE(parseInt(d.vendor, 16), 0x2c);
    }
    put(path.join(dir, 'config'), cfg);
    rel(path.join(devicesDir, d.bdf), dir);
    if (d.driver) {
      const ddir = path.join(driversDir, d.driver);
      if (!drivers.has(d.driver)) {
        drivers.add(d.driver);
        mk(ddir);
        for (const f of ['bind', 'unbind', 'new_id', 'remove_id']) put(path.join(ddir, f), '');
      }
      rel(path.join(dir, 'driver'), ddir);
      rel(path.join(ddir, d.bdf), dir);
    }
    if (d.vfioDev) {
      mk(path.join(dir, 'vfio-dev', d.vfioDev));
      // The vfio-dev class's link to it, as the driver core makes it.
      mk(path.join(sys, 'class/vfio-dev'));
      rel(path.join(sys, 'class/vfio-dev', d.vfioDev), path.join(dir, 'vfio-dev', d.vfioDev));
    }
    const gdir = path.join(groupsDir, String(d.group));
    if (!groups.has(d.group)) {
      groups.add(d.group);
      mk(path.join(gdir, 'devices'));
      put(path.join(gdir, 'type'), 'DMA\n');
    }
    rel(path.join(dir, 'iommu_group'), gdir);
    rel(path.join(gdir, 'devices', d.bdf), dir);
    if (d.physfn) {
      const pfDir = dirOf.get(d.physfn)!;
      const n = vfCount.get(d.physfn) ?? 0;
      vfCount.set(d.physfn, n + 1);
      rel(path.join(dir, 'physfn'), pfDir);
      rel(path.join(pfDir, `virtfn${n}`), dir);
    }
  }
}
