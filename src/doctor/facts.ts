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
  /** iommufd and the cdev interface (optional: absent in older fact sets means "not looked at"). */
  readonly iommufd?: IommufdFacts;
}

export interface IommufdFacts {
  /** Kernel release from the root, null when unknown. */
  readonly kernelRelease: string | null;
  /** /sys/module/iommufd exists; with `initstate` it is a loadable module, without it built in. */
  readonly sysModule: boolean;
  readonly loadable: boolean;
  /** modules.builtin / modules.dep of the release list iommufd (null: file missing). */
  readonly builtinListed: boolean | null;
  readonly depListed: boolean | null;
  /** The same for vfio_iommu_type1 (the legacy container's backend). */
  readonly type1DepListed: boolean | null;
  readonly type1BuiltinListed: boolean | null;
  /** CONFIG_ lines of /boot/config-RELEASE or /proc/config.gz text, when readable: name → value. */
  readonly config: Readonly<Record<string, string>> | null;
  /** /sys/class/vfio-dev entries, and how many of them have a device number (a cdev). */
  readonly vfioDevEntries: number;
  readonly vfioDevCdevs: number;
  /** /dev/vfio/devices exists. */
  readonly devVfioDevices: boolean;
}
