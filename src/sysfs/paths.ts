import { isBdf } from '../model/address.js';
import { driverNameProblem, isDriverName, quoteShort } from '../model/names.js';

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
export const CLASS_VFIO_DEV = '/sys/class/vfio-dev';
export const PROC_CMDLINE = '/proc/cmdline';
export const PROC_DEVICES = '/proc/devices';
export const PROC_OSRELEASE = '/proc/sys/kernel/osrelease';
export const PCI_IDS_CANDIDATES = ['/usr/share/misc/pci.ids', '/usr/share/hwdata/pci.ids', '/usr/share/pci.ids'];

/**
 * Names are never paths: the helpers that join a name into a path refuse anything that is not
 * one (defence in depth; callers check names where they enter, with a message for the user).
 * A refusal here is an Error, i.e. an internal error: it means a check upstream is missing.
 */
function notAName(kind: string, value: string, why: string | null): never {
  throw new Error(`${kind} ${quoteShort(value)} ${why ?? 'is not a name'}: refusing to join it into a path`);
}

export const devicePath = (bdf: string) => (isBdf(bdf) ? `${PCI_DEVICES}/${bdf}` : notAName('PCI address', bdf, 'is not DDDD:BB:DD.F'));
export const driverPath = (driver: string) => (isDriverName(driver) ? `${PCI_DRIVERS}/${driver}` : notAName('driver name', driver, driverNameProblem(driver)));
export const moduleDriversPath = (module: string) => (isDriverName(module) ? `/sys/module/${module}/drivers` : notAName('module name', module, driverNameProblem(module)));
/** `release` is one path component: the kernel release (`uname -r`), never `.`, `..` or with `/`. */
export const modulesAliasPath = (release: string) => (isReleaseName(release) ? `/lib/modules/${release}/modules.alias` : notAName('kernel release', release, 'is not one path component'));
export const groupDevicesPath = (group: number) => `${IOMMU_GROUPS}/${group}/devices`;

/** A kernel release as `uname -r` prints it: one path component of printable characters. */
export function isReleaseName(release: string): boolean {
  return release.length > 0 && release.length <= 64 && release !== '.' && release !== '..' && /^[!-.0-~]+$/.test(release);
}
