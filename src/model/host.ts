import { isDriverName } from './names.js';
import type { Bdf } from './address.js';
import { isVfioDriver, keepsGroupViable } from './drivers.js';
import type { Host, IommuGroup, PciDevice } from './types.js';

export function deviceOf(host: Host, bdf: Bdf): PciDevice {
  const d = host.devices.get(bdf);
  if (!d) throw new Error(`device ${bdf} is not in the scan`);
  return d;
}

export function groupOf(host: Host, id: number): IommuGroup | undefined {
  return host.groups.find((g) => g.id === id);
}

export function isVfioBound(d: PciDevice): boolean {
  return isVfioDriver(d.driver, d.vfioFamily);
}

/**
 * driver_override names a driver the device is not on: a change was interrupted before the
 * bind finished (or someone wrote the override by hand, or its module is not loaded yet).
 */
export function overrideMismatch(d: PciDevice): boolean {
  return d.driverOverride !== null && d.driver !== d.driverOverride;
}

/** What to do about an override that disagrees with the driver, in commands that work. */
export function mismatchAdvice(d: PciDevice): string {
  const clear = `echo > /sys/bus/pci/devices/${d.bdf}/driver_override`;
  const finish = d.driverOverride !== null && isDriverName(d.driverOverride) ? `finish it with vfioctl bind ${d.bdf} --variant ${d.driverOverride}, or ` : '';
  return `an interrupted change? the next vfioctl change (not a dry run) puts an interrupted run back; or ${finish}clear it with ${d.driver === null ? `vfioctl unbind ${d.bdf}` : clear}`;
}

/** Members that stop the group being usable by VFIO (kernel.md §2.5). */
export function groupBlockers(host: Host, group: IommuGroup): Bdf[] {
  return group.devices.filter((bdf) => {
    const d = deviceOf(host, bdf);
    return !keepsGroupViable(d.driver, d.vfioFamily);
  });
}

/** Chain of upstream bridges from the device's parent up to the root port. */
export function bridgeChain(host: Host, bdf: Bdf): Bdf[] {
  const chain: Bdf[] = [];
  for (let p = host.devices.get(bdf)?.parent ?? null; p !== null; p = host.devices.get(p)?.parent ?? null) {
    chain.push(p);
    if (chain.length > 64) break; // defends against a malformed tree with a cycle
  }
  return chain;
}

/** Devices whose sysfs parent is the given bridge (its secondary bus, plus VFs there). */
export function childrenOf(host: Host, bridge: Bdf | null, rootBus?: string): PciDevice[] {
  const out: PciDevice[] = [];
  for (const d of host.devices.values()) {
    if (d.parent === bridge && (bridge !== null || d.rootBus === rootBus)) out.push(d);
  }
  return out;
}
