import { bdfParts } from '../model/address.js';
import type { Host, PciSlot } from '../model/types.js';
import type { FsRoot } from './fsroot.js';
import { PCI_SLOTS, devicePath } from './paths.js';

const ADDRESS = /^([0-9a-f]{4,8}):([0-9a-f]{2})(?::([0-9a-f]{2}))?$/i;

/**
 * The hotplug driver behind a slot with no `module` link (Debian 6.12, built-in pciehp;
 * kernel.md §11 (j)): the bridge owning the slot's bus has PCIe port-service children named
 * `BDF:pcieNNN`, and the hotplug service's `driver` link names pciehp when native PCIe
 * hotplug owns the port. pciehp registers its slot as device number 0 (the address reads
 * `DDDD:BB:00` on 7.1+ too), so other slot numbers on that bus are not pciehp's.
 */
function portServiceDriver(fs: FsRoot, host: Host, domain: number, bus: number, number: number | null): string | null {
  if (number !== 0) return null;
  for (const d of host.devices.values()) {
    if (!d.bridge || d.secondaryBus !== bus || bdfParts(d.bdf).domain !== domain) continue;
    const dir = fs.linkTarget(devicePath(d.bdf)) ?? devicePath(d.bdf);
    for (const child of fs.list(dir)) {
      if (!child.startsWith(`${d.bdf}:pcie`)) continue;
      if (fs.linkName(`${dir}/${child}/driver`) === 'pciehp') return 'pciehp';
    }
  }
  return null;
}

/** Every slot under /sys/bus/pci/slots with its address and hotplug driver. */
export function readSlots(fs: FsRoot, host: Host): PciSlot[] {
  const out: PciSlot[] = [];
  for (const name of fs.list(PCI_SLOTS)) {
    const m = ADDRESS.exec(fs.read(`${PCI_SLOTS}/${name}/address`)?.trim() ?? '');
    if (!m) continue;
    const domain = parseInt(m[1]!, 16);
    const bus = parseInt(m[2]!, 16);
    const number = m[3] === undefined ? null : parseInt(m[3], 16);
    const module = fs.linkName(`${PCI_SLOTS}/${name}/module`);
    const viaPort = module === undefined ? portServiceDriver(fs, host, domain, bus, number) : null;
    out.push({
      name,
      domain,
      bus,
      number,
      hotplugDriver: module ?? viaPort,
      driverSource: module !== undefined ? 'module' : viaPort !== null ? 'port-service' : null,
    });
  }
  return out;
}
