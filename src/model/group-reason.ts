import { busOf, slotOf, type Bdf } from './address.js';
import { bridgeChain } from './host.js';
import type { Host, IommuGroup, PciDevice } from './types.js';

export type GroupReasonCode =
  | 'isolated'
  | 'conventional-pci-bridge'
  | 'multifunction'
  | 'root-bus-multifunction'
  | 'port-with-devices-below'
  | 'shared-upstream-bridge'
  | 'sriov-pf-vf'
  | 'not-visible';

export interface GroupReason {
  code: GroupReasonCode;
  text: string;
}

/**
 * Why the kernel put these devices together, as far as sysfs shows it (kernel.md §7.3).
 * ACS capabilities and quirks are invisible without root config reads, so the wording
 * says what the topology shows rather than claiming a cause.
 */
export function explainGroup(host: Host, group: IommuGroup): GroupReason {
  const devs = group.devices.map((b) => host.devices.get(b)).filter((d): d is PciDevice => d !== undefined);
  if (devs.length <= 1) return { code: 'isolated', text: 'isolated: the only device in its group' };
  const inGroup = new Set(group.devices);
  const bridges = devs.filter((d) => d.bridge);
  const endpoints = devs.filter((d) => !d.bridge);

  // Conventional PCI behind a PCIe-to-PCI (or PCI-to-PCI) bridge: all alias to the bridge.
  const conv = bridges.find((b) => {
    const below = endpoints.filter((e) => e.parent === b.bdf);
    return below.length > 0 && (below.some((e) => e.pcie === false) || b.classCode === '060401');
  });
  if (conv) {
    return {
      code: 'conventional-pci-bridge',
      text: `conventional PCI behind bridge ${conv.bdf}: devices on a shared PCI bus cannot be isolated`,
    };
  }

  const slots = new Set(devs.map((d) => slotOf(d.bdf)));
  if (slots.size === 1) {
    const onRoot = devs[0]!.parent === null;
    return onRoot
      ? { code: 'root-bus-multifunction', text: `functions of multifunction device ${slots.values().next().value} on the root bus, without ACS isolation between them` }
      : { code: 'multifunction', text: `functions of one multifunction device (${slots.values().next().value}) without ACS isolation between them` };
  }

  const pfs = devs.filter((d) => d.virtfns.some((v) => inGroup.has(v)));
  if (pfs.length > 0 && devs.every((d) => pfs.includes(d) || (d.physfn !== null && inGroup.has(d.physfn)))) {
    return { code: 'sriov-pf-vf', text: `SR-IOV physical function ${pfs[0]!.bdf} and its virtual functions without ACS isolation` };
  }

  // A port in the group with the devices below it: the port lacks ACS (kernel.md §7.3 case 1).
  const top = bridges.find((b) => devs.every((d) => d === b || bridgeChain(host, d.bdf).includes(b.bdf)));
  if (top) {
    return {
      code: 'port-with-devices-below',
      text: `bridge ${top.bdf} shares its group with the devices below it: no ACS isolation on that port`,
    };
  }

  // Devices under one upstream bridge that is not itself in the group.
  const parents = new Set(devs.map((d) => d.parent ?? `root ${busOf(d.bdf)}`));
  if (parents.size === 1) {
    const p = devs[0]!.parent;
    return p
      ? { code: 'shared-upstream-bridge', text: `devices below bridge ${p} without ACS isolation between them` }
      : { code: 'shared-upstream-bridge', text: `devices on root bus ${busOf(devs[0]!.bdf)} without ACS isolation between them` };
  }
  return { code: 'not-visible', text: 'grouped by the IOMMU driver (missing ACS, DMA alias quirk or per-IOMMU policy; not visible in sysfs)' };
}

/** Members that are in the group only as bridges (never bound to vfio). */
export function groupBridges(host: Host, group: IommuGroup): Bdf[] {
  return group.devices.filter((b) => host.devices.get(b)?.bridge);
}
