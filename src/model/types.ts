import type { Bdf } from './address.js';

/** One PCI function as read from sysfs. Plain data: the scanner fills it, planners read it. */
export interface PciDevice {
  readonly bdf: Bdf;
  /** 4 lower-case hex digits. */
  readonly vendorId: string;
  readonly deviceId: string;
  readonly subsystemVendorId: string | null;
  readonly subsystemDeviceId: string | null;
  /** 6 lower-case hex digits: base class, subclass, prog-if. */
  readonly classCode: string;
  /** Not read by the scan (show reads it with readRevision). */
  readonly revision: string | null;
  readonly modalias: string | null;
  /** Driver name from the `driver` link; null when unbound. */
  readonly driver: string | null;
  /** null when unset (`(null)` or empty in sysfs). */
  readonly driverOverride: string | null;
  /** IOMMU group number, from the `iommu_group` link's name; null without one. */
  readonly iommuGroup: number | null;
  /** Upstream bridge from the device's real path; null on a root bus. */
  readonly parent: Bdf | null;
  /** Root bus directory name (`pci0000:00`) the device hangs below. */
  readonly rootBus: string;
  /** PCI-to-PCI (or CardBus) bridge: header type 1/2, never bindable to vfio. */
  readonly bridge: boolean;
  /** Bridges: the secondary bus number, when sysfs shows it. */
  readonly secondaryBus: number | null;
  /** `reset_method` list; [] when the file is missing or empty. */
  readonly resetMethods: readonly string[];
  /** Whether the `reset_method` attribute exists at all (older kernels lack it). */
  readonly resetMethodKnown: boolean;
  /** VF: the PF's address. */
  readonly physfn: Bdf | null;
  /** PF: its VFs (from `virtfnN` links, or inverted from the VFs' `physfn`). */
  readonly virtfns: readonly Bdf[];
  readonly sriovNumVfs: number | null;
  readonly sriovTotalVfs: number | null;
  readonly numaNode: number | null;
  /** `boot_vga` (VGA-class devices only). */
  readonly bootVga: boolean | null;
  /** PCI Express function (has link attributes). Probed only for a bridge and the devices
   * below it in one group, where it explains the grouping; null elsewhere and on trees
   * without link attributes. */
  readonly pcie: boolean | null;
  /** Bound to vfio-pci or a variant: a known driver name, or another driver whose device has
   * registered a vfio device (`vfio-dev/` exists: an out-of-tree variant). */
  readonly vfioFamily: boolean;
}

export interface IommuGroup {
  readonly id: number;
  /** Member BDFs, sorted. */
  readonly devices: readonly Bdf[];
}

/** Everything one scan learned about the host. */
export interface Host {
  readonly devices: ReadonlyMap<Bdf, PciDevice>;
  /** Sorted by id. */
  readonly groups: readonly IommuGroup[];
  /** `/sys/kernel/iommu_groups` has entries or any device has an iommu_group link. */
  readonly iommuPresent: boolean;
  /** Kernel release (`uname -r` of the scanned root), when known. */
  readonly kernelRelease: string | null;
}

/** A `/sys/bus/pci/slots/<name>` entry and the hotplug driver behind it (kernel.md §1.2, §11 (j)). */
export interface PciSlot {
  readonly name: string;
  readonly domain: number;
  readonly bus: number;
  /** Device number from `address` (`DDDD:BB:SS`); null for placeholder slots (`DDDD:BB`). */
  readonly number: number | null;
  /** Hotplug driver (`pciehp`, `acpiphp`, `shpchp`, …); null when sysfs does not say. */
  readonly hotplugDriver: string | null;
  /** Where the driver name came from: the slot's `module` link, or the bridge's PCIe hotplug port service. */
  readonly driverSource: 'module' | 'port-service' | null;
}
