import type { FsRoot } from '../sysfs/fsroot.js';
import { CLASS_IOMMU, DEV_VFIO, IOMMU_GROUPS, PROC_CMDLINE } from '../sysfs/paths.js';
import type { DoctorFacts, NodeFact } from './facts.js';

const ACPI_TABLES = '/sys/firmware/acpi/tables';
const PROC_INTERRUPTS = '/proc/interrupts';
const DEV_IOMMU = '/dev/iommu';
const param = (module: string, name: string) => `/sys/module/${module}/parameters/${name}`;

function nodeFact(fs: FsRoot, p: string): NodeFact | undefined {
  const st = fs.stat(p);
  return st ? { path: p, mode: st.mode, uid: st.uid, gid: st.gid } : undefined;
}

/** Read everything doctor needs. Never throws: a missing file is a fact too. */
export function readDoctorFacts(fs: FsRoot): DoctorFacts {
  const vfioEntries = fs.list(DEV_VFIO);
  const groupNodes = vfioEntries
    .filter((n) => /^(noiommu-)?\d+$/.test(n))
    .map((n) => nodeFact(fs, `${DEV_VFIO}/${n}`))
    .filter((n): n is NodeFact => n !== undefined);
  const deviceNodes = fs.list(`${DEV_VFIO}/devices`)
    .map((n) => nodeFact(fs, `${DEV_VFIO}/devices/${n}`))
    .filter((n): n is NodeFact => n !== undefined);
  return {
    root: fs.root,
    iommuGroupCount: fs.list(IOMMU_GROUPS).length,
    iommuUnits: fs.list(CLASS_IOMMU),
    cmdline: fs.read(PROC_CMDLINE) ?? '',
    // Tables are mode 0400, but their existence is visible to anyone.
    firmwareDmar: fs.lexists(`${ACPI_TABLES}/DMAR`),
    firmwareIvrs: fs.lexists(`${ACPI_TABLES}/IVRS`),
    interrupts: fs.readText(PROC_INTERRUPTS),
    modules: {
      vfio: fs.isDir('/sys/module/vfio'),
      vfio_pci: fs.isDir('/sys/module/vfio_pci'),
      vfio_iommu_type1: fs.isDir('/sys/module/vfio_iommu_type1'),
      iommufd: fs.isDir('/sys/module/iommufd'),
    },
    vfioPciDriver: fs.isDir('/sys/bus/pci/drivers/vfio-pci'),
    type1AllowUnsafeInterrupts: fs.read(param('vfio_iommu_type1', 'allow_unsafe_interrupts'))?.trim(),
    iommufdAllowUnsafeInterrupts: fs.read(param('iommufd', 'allow_unsafe_interrupts'))?.trim(),
    noiommuMode: fs.read(param('vfio', 'enable_unsafe_noiommu_mode'))?.trim(),
    devVfio: fs.isDir(DEV_VFIO),
    container: nodeFact(fs, `${DEV_VFIO}/vfio`),
    groupNodes,
    deviceNodes,
    iommufdNode: nodeFact(fs, DEV_IOMMU),
  };
}
