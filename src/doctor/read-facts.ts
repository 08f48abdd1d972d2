import type { FsRoot } from '../sysfs/fsroot.js';
import { CLASS_IOMMU, DEV_VFIO, IOMMU_GROUPS, PROC_CMDLINE } from '../sysfs/paths.js';
import type { DoctorFacts, IommufdFacts, NodeFact } from './facts.js';
import { isReleaseName } from '../sysfs/paths.js';
import { kernelRelease } from '../sysfs/scan.js';

const ACPI_TABLES = '/sys/firmware/acpi/tables';
const PROC_INTERRUPTS = '/proc/interrupts';
const DEV_IOMMU = '/dev/iommu';
const param = (module: string, name: string) => `/sys/module/${module}/parameters/${name}`;

function nodeFact(fs: FsRoot, p: string): NodeFact | undefined {
  const st = fs.stat(p);
  return st ? { path: p, mode: st.mode, uid: st.uid, gid: st.gid } : undefined;
}

const listed = (text: string | undefined, module: string): boolean | null => {
  if (text === undefined) return null;
  const re = new RegExp(`(^|/)${module.replace(/_/g, '[-_]')}\\.ko(\\.(xz|gz|zst))?(:|$)`, 'm');
  return re.test(text);
};

function readIommufdFacts(fs: FsRoot): IommufdFacts {
  const release = kernelRelease(fs);
  const dir = release !== null && isReleaseName(release) ? `/lib/modules/${release}` : null;
  const dep = dir ? fs.readText(`${dir}/modules.dep`) : undefined;
  const builtin = dir ? fs.readText(`${dir}/modules.builtin`) : undefined;
  const configText = release !== null && isReleaseName(release) ? fs.readText(`/boot/config-${release}`) : undefined;
  let config: Record<string, string> | null = null;
  if (configText !== undefined) {
    config = {};
    for (const line of configText.split('\n')) {
      const m = /^(CONFIG_[A-Z0-9_]+)=(.*)$/.exec(line.trim());
      if (m) config[m[1]!] = m[2]!;
    }
  }
  const classEntries = fs.list('/sys/class/vfio-dev');
  return {
    kernelRelease: release,
    sysModule: fs.isDir('/sys/module/iommufd'),
    loadable: fs.lexists('/sys/module/iommufd/initstate'),
    builtinListed: listed(builtin, 'iommufd'),
    depListed: listed(dep, 'iommufd'),
    type1DepListed: listed(dep, 'vfio_iommu_type1'),
    type1BuiltinListed: listed(builtin, 'vfio_iommu_type1'),
    config,
    vfioDevEntries: classEntries.length,
    vfioDevCdevs: classEntries.filter((n) => fs.exists(`/sys/class/vfio-dev/${n}/dev`)).length,
    devVfioDevices: fs.isDir(`${DEV_VFIO}/devices`),
  };
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
    iommufd: readIommufdFacts(fs),
  };
}
