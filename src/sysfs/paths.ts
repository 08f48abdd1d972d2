/** Every sysfs/procfs path literal vfioctl uses, in one place. All are in-root paths. */
export const PCI_DEVICES = '/sys/bus/pci/devices';
export const PCI_DRIVERS = '/sys/bus/pci/drivers';
export const PCI_DRIVERS_PROBE = '/sys/bus/pci/drivers_probe';
export const PCI_SLOTS = '/sys/bus/pci/slots';
export const IOMMU_GROUPS = '/sys/kernel/iommu_groups';
export const CLASS_IOMMU = '/sys/class/iommu';
export const CLASS_NET = '/sys/class/net';
export const CLASS_BLOCK = '/sys/class/block';
/** Whole disks only; older trees and captured snapshots (ghw) have it without /sys/class/block. */
export const SYS_BLOCK = '/sys/block';
export const DEV_VFIO = '/dev/vfio';
export const PROC_CMDLINE = '/proc/cmdline';
export const PROC_OSRELEASE = '/proc/sys/kernel/osrelease';
export const PCI_IDS_CANDIDATES = ['/usr/share/misc/pci.ids', '/usr/share/hwdata/pci.ids', '/usr/share/pci.ids'];

export const devicePath = (bdf: string) => `${PCI_DEVICES}/${bdf}`;
export const driverPath = (driver: string) => `${PCI_DRIVERS}/${driver}`;
export const moduleDriversPath = (module: string) => `/sys/module/${module}/drivers`;
export const modulesAliasPath = (release: string) => `/lib/modules/${release}/modules.alias`;
export const groupDevicesPath = (group: number) => `${IOMMU_GROUPS}/${group}/devices`;
