/**
 * Driver knowledge the kernel does not show in sysfs (kernel.md §2.2, §4.5).
 * Only these set driver_managed_dma, so only these keep an IOMMU group viable.
 */
export const VFIO_PCI = 'vfio-pci';

/** Upstream vfio-pci variant drivers (driver names as they appear in sysfs). */
export const KNOWN_VARIANTS: ReadonlySet<string> = new Set([
  'mlx5_vfio_pci',
  'hisi_acc_vfio_pci',
  'pds_vfio_pci',
  'virtio_vfio_pci',
  'nvgrace_gpu_vfio_pci',
  'qat_vfio_pci',
  'xe-vfio-pci',
  'ism_vfio_pci',
]);

const DMA_SAFE_NON_VFIO: ReadonlySet<string> = new Set(['pci-stub', 'pcieport']);

/**
 * A vfio-family driver: vfio-pci, a known variant, or any driver whose device shows
 * `vfio-dev/` (out-of-tree variants).
 */
export function isVfioDriver(driver: string | null, hasVfioDev = false): boolean {
  if (driver === null) return false;
  return driver === VFIO_PCI || KNOWN_VARIANTS.has(driver) || hasVfioDev;
}

/**
 * Only a driver that is neither a known vfio-family driver nor a DMA-safe one needs its
 * device's `vfio-dev/` looked at to tell whether it is an out-of-tree variant.
 */
export function needsVfioDevCheck(driver: string | null): boolean {
  return driver !== null && !isVfioDriver(driver) && !DMA_SAFE_NON_VFIO.has(driver);
}

/** Whether a bound driver leaves the group usable by VFIO (driver_managed_dma). */
export function keepsGroupViable(driver: string | null, hasVfioDev = false): boolean {
  return driver === null || DMA_SAFE_NON_VFIO.has(driver) || isVfioDriver(driver, hasVfioDev);
}
