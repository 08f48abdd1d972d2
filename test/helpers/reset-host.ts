import { busOf, compareBdf } from '../../src/model/address.js';
import type { Host, PciDevice, PciSlot } from '../../src/model/types.js';

/** A device for reset-planner tests: only what the planner reads, with sensible defaults. */
export interface ResetDev {
  bdf: string;
  /** Upstream bridge as sysfs nests it (a VF on a virtual bus hangs below the PF's bridge). */
  parent?: string | null;
  /** `vvvv:dddd`; default 8086:10d3, bridges 1b36:000c. */
  id?: string;
  /** Bridge (class 0604): bound to pcieport unless `driver` says otherwise. */
  bridge?: boolean;
  /** Default: vfio-pci for endpoints, pcieport for bridges. `null` = unbound. */
  driver?: string | null;
  /** null = no iommu_group link. */
  group?: number | null;
  physfn?: string;
  resetMethods?: string[];
  secondaryBus?: number;
}

const busNum = (bdf: string) => parseInt(bdf.slice(-7, -5), 16);

/** A Host as scanHost would return it, without a tree on disk. */
export function resetHost(devs: ResetDev[], kernelRelease: string | null = '6.1.0-56-amd64'): Host {
  let nextGroup = 100;
  const devices = new Map<string, PciDevice>();
  for (const d of [...devs].sort((a, b) => compareBdf(a.bdf, b.bdf))) {
    const bridge = d.bridge === true;
    const [vendorId, deviceId] = (d.id ?? (bridge ? '1b36:000c' : '8086:10d3')).split(':') as [string, string];
    const driver = d.driver === undefined ? (bridge ? 'pcieport' : 'vfio-pci') : d.driver;
    const child = devs.find((c) => c.parent === d.bdf && !c.physfn);
    const secondary = bridge ? d.secondaryBus ?? (child ? busNum(child.bdf) : null) : null;
    devices.set(d.bdf, {
      bdf: d.bdf, vendorId, deviceId, subsystemVendorId: vendorId, subsystemDeviceId: '0000',
      classCode: bridge ? '060400' : '020000', revision: '00', modalias: null,
      driver, driverOverride: null,
      iommuGroup: d.group === undefined ? nextGroup++ : d.group,
      parent: d.parent ?? null, rootBus: `pci${busOf((d.parent ? rootOf(devs, d.bdf) : d.bdf))}`,
      bridge, secondaryBus: secondary,
      resetMethods: d.resetMethods ?? (bridge ? ['pm'] : ['pm', 'bus']), resetMethodKnown: true,
      physfn: d.physfn ?? null, virtfns: devs.filter((v) => v.physfn === d.bdf).map((v) => v.bdf),
      sriovNumVfs: null, sriovTotalVfs: null, numaNode: null, bootVga: null, pcie: true,
      vfioFamily: driver === 'vfio-pci',
    });
  }
  const members = new Map<number, string[]>();
  for (const d of devices.values()) if (d.iommuGroup !== null) (members.get(d.iommuGroup) ?? members.set(d.iommuGroup, []).get(d.iommuGroup)!).push(d.bdf);
  const groups = [...members.entries()].sort((a, b) => a[0] - b[0]).map(([id, list]) => ({ id, devices: list.sort(compareBdf) }));
  return { devices, groups, iommuPresent: groups.length > 0, kernelRelease };
}

function rootOf(devs: ResetDev[], bdf: string): string {
  let cur = devs.find((d) => d.bdf === bdf)!;
  for (let n = 0; cur.parent && n < 64; n++) cur = devs.find((d) => d.bdf === cur.parent)!;
  return cur.bdf;
}

/** A slot as readSlots would return it. */
export function resetSlot(name: string, address: string, hotplugDriver: string | null): PciSlot {
  const [dom, bus, num] = address.split(':');
  return { name, domain: parseInt(dom!, 16), bus: parseInt(bus!, 16), number: num === undefined ? null : parseInt(num, 16), hotplugDriver, driverSource: hotplugDriver ? 'module' : null };
}
