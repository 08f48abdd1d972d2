/** What doctor looks at, read once by read-facts.ts; the checks are pure functions of it. */
export interface NodeFact {
  /** In-root path, e.g. `/dev/vfio/12`. */
  readonly path: string;
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
}

export interface DoctorFacts {
  /** The --root the facts were read under; '/' (or absent) for the running host. */
  readonly root?: string;
  /** Entries of /sys/kernel/iommu_groups. */
  readonly iommuGroupCount: number;
  /** Entries of /sys/class/iommu (`dmar0`, `ivhd0`, …). */
  readonly iommuUnits: readonly string[];
  /** /proc/cmdline, '' when unreadable. */
  readonly cmdline: string;
  /** ACPI tables present under /sys/firmware/acpi/tables. */
  readonly firmwareDmar: boolean;
  readonly firmwareIvrs: boolean;
  /** /proc/interrupts, undefined when unreadable. */
  readonly interrupts: string | undefined;
  /** Loaded (or built-in with parameters): the directory /sys/module/<name> exists. */
  readonly modules: Readonly<Record<'vfio' | 'vfio_pci' | 'vfio_iommu_type1' | 'iommufd', boolean>>;
  /** /sys/bus/pci/drivers/vfio-pci exists. */
  readonly vfioPciDriver: boolean;
  /** Module parameter values as sysfs prints them (`Y`/`N`), undefined when absent. */
  readonly type1AllowUnsafeInterrupts: string | undefined;
  readonly iommufdAllowUnsafeInterrupts: string | undefined;
  readonly noiommuMode: string | undefined;
  /** /dev/vfio exists. */
  readonly devVfio: boolean;
  /** /dev/vfio/vfio (legacy container). */
  readonly container: NodeFact | undefined;
  /** /dev/vfio/N and /dev/vfio/noiommu-N. */
  readonly groupNodes: readonly NodeFact[];
  /** /dev/vfio/devices/vfioX. */
  readonly deviceNodes: readonly NodeFact[];
  /** /dev/iommu. */
  readonly iommufdNode: NodeFact | undefined;
}
