import type { Bdf } from '../model/address.js';
import { isVfioBound } from '../model/host.js';
import type { Host, PciDevice } from '../model/types.js';
import type { IommufdFacts, VfioHolder } from '../plan/iommufd-reset.js';
import { kernelRelease } from './scan.js';
import type { FsRoot } from './fsroot.js';
import { DEV_VFIO, devicePath } from './paths.js';

/**
 * The VFIO interfaces a vfio-bound device offers user space (kernel.md §1.3), read on demand
 * for the JSON mappers (never in the scan's hot loop):
 *
 * - the group node `/dev/vfio/N` (`/dev/vfio/noiommu-N` in noiommu mode), which the kernel
 *   creates when the group's first member binds to a vfio-family driver;
 * - the device cdev `/dev/vfio/devices/vfioX` (6.6+, CONFIG_VFIO_DEVICE_CDEV). `vfio-dev/vfioX`
 *   exists under every vfio-bound device since 6.1, with or without the cdev; only a cdev has a
 *   device number, so the kernel's driver core gives `vfio-dev/vfioX/dev` only then. A cdev is
 *   reported when that `dev` file or the node itself is there.
 */
export interface VfioNodes {
  vfioGroupNode: string | null;
  vfioCdev: string | null;
}

export const NO_VFIO_NODES: VfioNodes = { vfioGroupNode: null, vfioCdev: null };

/** `vfio0` for the device's vfio-dev/ entry, null without one. */
export function vfioDevName(fs: FsRoot, bdf: Bdf): string | null {
  return fs.list(`${devicePath(bdf)}/vfio-dev`).find((n) => /^(noiommu-)?vfio\d+$/.test(n)) ?? null;
}

/** The device's vfio-dev/ entry when it has a cdev (a device number), else null. */
export function vfioCdevName(fs: FsRoot, bdf: Bdf): string | null {
  const name = vfioDevName(fs, bdf);
  if (name === null) return null;
  return fs.exists(`${devicePath(bdf)}/vfio-dev/${name}/dev`) || fs.lexists(`${DEV_VFIO}/devices/${name}`) ? name : null;
}

/** The group node of a vfio-bound device's group, when the tree shows it. */
function groupNode(fs: FsRoot, group: number): string | null {
  for (const name of [String(group), `noiommu-${group}`]) {
    if (fs.lexists(`${DEV_VFIO}/${name}`) || fs.lexists(`/sys/class/vfio/${name}`)) return `${DEV_VFIO}/${name}`;
  }
  return null;
}

export function vfioNodes(fs: FsRoot, d: PciDevice): VfioNodes {
  if (!isVfioBound(d)) return NO_VFIO_NODES;
  const cdev = vfioCdevName(fs, d.bdf);
  return {
    vfioGroupNode: d.iommuGroup === null ? null : groupNode(fs, d.iommuGroup),
    vfioCdev: cdev === null ? null : `${DEV_VFIO}/devices/${cdev}`,
  };
}

/** A per-command reader: the nodes of one device, each read once. */
export function vfioNodeReader(fs: FsRoot): (d: PciDevice) => VfioNodes {
  const cache = new Map<Bdf, VfioNodes>();
  return (d) => {
    let v = cache.get(d.bdf);
    if (!v) cache.set(d.bdf, (v = vfioNodes(fs, d)));
    return v;
  };
}

/** The cdev facts the iommufd hot-reset answer needs (src/plan/iommufd-reset.ts). */
export function iommufdFacts(fs: FsRoot, host: Host, holders: (bdf: Bdf) => readonly VfioHolder[]): IommufdFacts {
  return {
    kernelRelease: host.kernelRelease ?? kernelRelease(fs),
    cdevOf: (bdf) => (vfioDevName(fs, bdf) === null ? 'no-vfio-dev' : vfioCdevName(fs, bdf) === null ? 'no-cdev' : 'cdev'),
    holders,
  };
}
