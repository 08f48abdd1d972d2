import * as fs from 'node:fs';
import { moduleOfPath } from '../sysfs/modules.js';
import { normalizeModuleName } from '../plan/variant.js';
import * as path from 'node:path';
import { SnapshotWriter, type SnapshotStats } from './copy.js';
import {
  ATTRS_BLOCK, ATTRS_DEVICE, ATTRS_IOMMU_UNIT, ATTRS_NET, ATTRS_SLOT, DEVICE_LINK_PATTERNS, PROC_FILES, ACPI_IOMMU_TABLES, VFIO_MODULES,
} from './select.js';

import { pciIdsSubset, type PresentId } from './pciids.js';

/** Where vfioctl looks for pci.ids (src/sysfs/paths.ts), first match wins. */
const PCI_IDS = ['/usr/share/misc/pci.ids', '/usr/share/hwdata/pci.ids', '/usr/share/pci.ids'];

const BDF = /^[0-9a-f]{4,8}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/;

/** Kernel release of the source root: its osrelease, else the caller's fallback (uname). */
function releaseOf(w: SnapshotWriter, fallback: string | null): string | null {
  try {
    return fs.readFileSync(path.join(w.srcRoot, 'proc/sys/kernel/osrelease'), 'utf8').trim() || fallback;
  } catch {
    return fallback;
  }
}

/** One PCI function: its attributes, links, vfio-dev/, port services and the path to it. */
function copyDevice(w: SnapshotWriter, bdf: string, present: PresentId[]): void {
  const entry = `/sys/bus/pci/devices/${bdf}`;
  // Real sysfs has links here; a hand-built tree may have plain directories.
  const target = w.isLink(entry) ? w.link(entry) : w.isDir(entry) ? entry : undefined;
  if (!target) return;
  w.stats.devices++;
  // Ancestors (root bus dir, upstream bridges) must exist as directories; bridges are
  // copied as devices in their own right.
  w.attrs(target, ATTRS_DEVICE, DEVICE_LINK_PATTERNS);
  const id = (name: string) => w.readAttr(`${target}/${name}`)?.trim().replace(/^0x/, '').toLowerCase() ?? null;
  present.push({ vendor: id('vendor') ?? '', device: id('device') ?? '', subVendor: id('subsystem_vendor'), subDevice: id('subsystem_device') });
  const vfio = `${target}/vfio-dev`;
  // With its `dev` attribute: a device number there is how a tree shows the device's cdev (6.6+).
  for (const name of w.list(vfio)) w.attrs(`${vfio}/${name}`, ['dev']);
  for (const name of w.list(target)) {
    // PCIe port services (BDF:pcieNNN): their driver link says whether pciehp owns the port.
    if (name.startsWith(`${bdf}:pcie`) && w.isDir(`${target}/${name}`)) w.attrs(`${target}/${name}`, [], [/^driver$/]);
  }
}

function copyClassNet(w: SnapshotWriter): void {
  for (const name of w.list('/sys/class/net')) {
    const target = w.link(`/sys/class/net/${name}`);
    if (target && !target.startsWith('/sys/devices/virtual/')) w.attrs(target, ATTRS_NET, [/^device$/]);
  }
}

function copyClassBlock(w: SnapshotWriter): void {
  for (const name of w.list('/sys/class/block')) {
    const target = w.link(`/sys/class/block/${name}`);
    if (!target || target.startsWith('/sys/devices/virtual/')) continue;
    w.attrs(target, ATTRS_BLOCK, [/^device$/]);
    w.mkdir(`${target}/holders`);
    for (const h of w.list(`${target}/holders`)) w.link(`${target}/holders/${h}`);
  }
}

function copyGroups(w: SnapshotWriter): void {
  const root = '/sys/kernel/iommu_groups';
  w.mkdir(root);
  for (const id of w.list(root)) {
    w.attrs(`${root}/${id}`, ['reserved_regions', 'type', 'name']);
    w.mkdir(`${root}/${id}/devices`);
    for (const bdf of w.list(`${root}/${id}/devices`)) w.link(`${root}/${id}/devices/${bdf}`);
  }
}

function copyDrivers(w: SnapshotWriter): void {
  const root = '/sys/bus/pci/drivers';
  w.mkdir(root);
  for (const drv of w.list(root)) {
    // Bound devices (BDF links) and the module link; bind/unbind/new_id are write-only.
    w.attrs(`${root}/${drv}`, [], [BDF, /^module$/]);
  }
  w.file('/sys/bus/pci/drivers_autoprobe');
}

function copyModules(w: SnapshotWriter): void {
  for (const mod of w.list('/sys/module')) {
    const drivers = `/sys/module/${mod}/drivers`;
    if (w.isDir(drivers)) {
      w.mkdir(drivers);
      for (const d of w.list(drivers)) w.link(`${drivers}/${d}`);
    }
  }
  for (const mod of VFIO_MODULES) {
    const params = `/sys/module/${mod}/parameters`;
    for (const p of w.list(params)) w.file(`${params}/${p}`);
  }
}

function copySlots(w: SnapshotWriter): void {
  const root = '/sys/bus/pci/slots';
  w.mkdir(root);
  for (const slot of w.list(root)) w.attrs(`${root}/${slot}`, ATTRS_SLOT, [/^module$/]);
}

function copyIommuUnits(w: SnapshotWriter): void {
  w.mkdir('/sys/class/iommu');
  for (const unit of w.list('/sys/class/iommu')) {
    const target = w.link(`/sys/class/iommu/${unit}`);
    if (!target) continue;
    w.mkdir(target);
    for (const sub of w.list(target)) {
      // intel-iommu/ or amd-iommu/ hold the capability registers.
      if (w.isDir(`${target}/${sub}`) && !w.isLink(`${target}/${sub}`) && sub.endsWith('-iommu')) {
        w.attrs(`${target}/${sub}`, ATTRS_IOMMU_UNIT);
      }
    }
  }
}

function copyDevVfio(w: SnapshotWriter): void {
  if (!w.isDir('/dev/vfio')) return;
  w.mkdir('/dev/vfio');
  for (const name of w.list('/dev/vfio')) {
    if (w.isDir(`/dev/vfio/${name}`)) {
      w.mkdir(`/dev/vfio/${name}`);
      for (const n of w.list(`/dev/vfio/${name}`)) w.placeholder(`/dev/vfio/${name}/${n}`);
    } else {
      w.placeholder(`/dev/vfio/${name}`); // character devices cannot live in a snapshot
    }
  }
  if (w.lstat('/dev/iommu')) w.placeholder('/dev/iommu');
}

/**
 * Only the override-only aliases matter to vfioctl; the rest of modules.alias is large. Of
 * modules.dep and modules.builtin, the lines of those aliases' modules are kept, with an empty
 * stand-in for each module file, so the tree answers "is this variant installed" as the host
 * does (src/sysfs/modules.ts modulePresence) without carrying the modules themselves.
 */
function copyAliases(w: SnapshotWriter, release: string): void {
  const dir = `/lib/modules/${release}`;
  const modules = new Set<string>();
  w.textFile(`${dir}/modules.alias`, (text) => {
    const lines = text.split('\n').filter((l) => l.startsWith('alias vfio_pci:'));
    for (const l of lines) modules.add(normalizeModuleName(l.split(/\s+/)[2] ?? ''));
    return lines.join('\n') + '\n';
  });
  const files: string[] = [];
  w.textFile(`${dir}/modules.dep`, (text) => text.split('\n').filter((l) => {
    const file = l.split(':')[0]?.trim() ?? '';
    if (!modules.has(moduleOfPath(file)) || file.split('/').includes('..')) return false;
    files.push(file.startsWith('/') ? file : `${dir}/${file}`);
    return true;
  }).join('\n') + '\n');
  w.textFile(`${dir}/modules.builtin`, (text) => text.split('\n').filter((l) => modules.has(moduleOfPath(l.trim()))).join('\n') + '\n');
  for (const f of files) if (f.startsWith('/lib/modules/') && w.lstat(f)) w.placeholder(f);
}

/**
 * Snapshot `srcRoot` (`/` for the running host) into `destDir`, which should be empty.
 * `liveRelease` is used when the source has no osrelease file (e.g. `uname -r`).
 */
export function takeSnapshot(srcRoot: string, destDir: string, liveRelease: string | null = null): SnapshotStats & { release: string | null } {
  const w = new SnapshotWriter(path.resolve(srcRoot), path.resolve(destDir));
  w.mkdir('/sys/bus/pci/devices');
  const present: PresentId[] = [];
  for (const bdf of w.list('/sys/bus/pci/devices')) if (BDF.test(bdf)) copyDevice(w, bdf, present);
  const ids = PCI_IDS.find((p) => w.lstat(p));
  if (ids) w.textFile(ids, (text) => pciIdsSubset(text, present));
  copyGroups(w);
  copyDrivers(w);
  copySlots(w);
  copyModules(w);
  copyIommuUnits(w);
  copyClassNet(w);
  copyClassBlock(w);
  copyDevVfio(w);
  for (const p of PROC_FILES) w.textFile(p, (t) => t);
  // Only their presence matters, and their contents are root-only firmware data.
  for (const p of ACPI_IOMMU_TABLES) if (w.lstat(p)) w.placeholder(p);
  const release = releaseOf(w, liveRelease);
  if (release) {
    // A live root without the procfs file still gets one, so --root knows the release.
    if (!w.lstat('/proc/sys/kernel/osrelease')) w.writeText('/proc/sys/kernel/osrelease', `${release}\n`);
    copyAliases(w, release);
  }
  return { ...w.stats, release };
}
