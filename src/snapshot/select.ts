/** What a snapshot keeps: the attributes vfioctl reads, nothing that blocks, writes or is large. */

export const ATTRS_DEVICE = [
  'vendor', 'device', 'subsystem_vendor', 'subsystem_device', 'class', 'revision', 'modalias',
  'driver_override', 'reset_method', 'numa_node', 'boot_vga', 'enable', 'power_state', 'd3cold_allowed',
  'irq', 'ari_enabled', 'current_link_speed', 'current_link_width', 'max_link_speed', 'max_link_width',
  'secondary_bus_number', 'subordinate_bus_number',
  'sriov_totalvfs', 'sriov_numvfs', 'sriov_offset', 'sriov_stride', 'sriov_vf_device',
  'sriov_drivers_autoprobe', 'sriov_vf_total_msix', 'sriov_vf_msix_count',
] as const;

/** Links inside a device directory worth keeping (relative in sysfs already). */
export const DEVICE_LINK_PATTERNS: readonly RegExp[] = [/^driver$/, /^iommu_group$/, /^iommu$/, /^physfn$/, /^virtfn\d+$/, /^subsystem$/];

export const ATTRS_NET = ['address', 'operstate', 'ifindex', 'flags', 'type', 'carrier', 'dev_id', 'dev_port'] as const;
export const ATTRS_BLOCK = ['dev', 'size', 'ro', 'removable', 'partition', 'start'] as const;
export const ATTRS_SLOT = ['address', 'power', 'attention', 'latch', 'adapter', 'max_bus_speed', 'cur_bus_speed'] as const;
export const ATTRS_IOMMU_UNIT = ['address', 'cap', 'ecap', 'version', 'features'] as const;

/** Small procfs files (read whole): the command line, release, and what "in use" checks read. */
export const PROC_FILES = [
  '/proc/cmdline', '/proc/sys/kernel/osrelease', '/proc/interrupts',
  '/proc/mounts', '/proc/self/mountinfo', '/proc/swaps',
  '/proc/net/route', '/proc/net/fib_trie', '/proc/net/if_inet6',
] as const;

/** ACPI tables whose presence says the firmware describes an IOMMU (doctor); kept empty. */
export const ACPI_IOMMU_TABLES = ['/sys/firmware/acpi/tables/DMAR', '/sys/firmware/acpi/tables/IVRS'] as const;

/** Module parameters that change VFIO's behaviour (kernel.md §1.3, §8). */
export const VFIO_MODULES = ['vfio', 'vfio_pci', 'vfio_pci_core', 'vfio_iommu_type1', 'iommufd'] as const;
