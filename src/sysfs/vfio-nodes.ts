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

/**
 * Whether `name` is in directory `dir`, for the node lookups below. Given a `listed` answer
 * (a reader on many devices lists each directory once), a name missing from the listing
 * is answered without a lookup; a listed one is still looked up (lexists: a link leading
 * out of the root counts as missing there, as it does here).
 */
type Lookup = (dir: string, name: string) => boolean;
const lookup = (fs: FsRoot): Lookup => (dir, name) => fs.lexists(`${dir}/${name}`);

/** The device's vfio-dev/ entry when it has a cdev (a device number), else null. */
export function vfioCdevName(fs: FsRoot, bdf: Bdf, has: Lookup = lookup(fs)): string | null {
  const name = vfioDevName(fs, bdf);
  if (name === null) return null;
  return fs.exists(`${devicePath(bdf)}/vfio-dev/${name}/dev`) || has(`${DEV_VFIO}/devices`, name) ? name : null;
}

/** The group node of a vfio-bound device's group, when the tree shows it. */
function groupNode(group: number, has: Lookup): string | null {
  for (const name of [String(group), `noiommu-${group}`]) {
    if (has(DEV_VFIO, name) || has('/sys/class/vfio', name)) return `${DEV_VFIO}/${name}`;
  }
  return null;
}

export function vfioNodes(fs: FsRoot, d: PciDevice, has: Lookup = lookup(fs)): VfioNodes {
  if (!isVfioBound(d)) return NO_VFIO_NODES;
  const cdev = vfioCdevName(fs, d.bdf, has);
  return {
    vfioGroupNode: d.iommuGroup === null ? null : groupNode(d.iommuGroup, has),
    vfioCdev: cdev === null ? null : `${DEV_VFIO}/devices/${cdev}`,
  };
}

/** vfio-bound devices a reader looks up one by one before it lists the node directories instead. */
const LIST_AFTER = 4;

/**
 * A per-command reader: the nodes of one device, each read once. From the LIST_AFTER-th
 * vfio-bound device on, /dev/vfio, /dev/vfio/devices and /sys/class/vfio are listed once and
 * a name not in them costs no lookup (a host with hundreds of vfio-bound VFs made up to 5
 * lookups for each; `show` of one device lists nothing).
 */
export function vfioNodeReader(fs: FsRoot): (d: PciDevice) => VfioNodes {
  const cache = new Map<Bdf, VfioNodes>();
  const listings = new Map<string, ReadonlySet<string> | null>();
  let bound = 0;
  const listed: Lookup = (dir, name) => {
    let names = listings.get(dir);
    if (names === undefined) listings.set(dir, (names = fs.entries(dir) ?? null));
    return (names === null || names.has(name)) && fs.lexists(`${dir}/${name}`);
  };
  const one = lookup(fs);
  return (d) => {
    let v = cache.get(d.bdf);
    if (!v) {
      if (isVfioBound(d)) bound++;
      cache.set(d.bdf, (v = vfioNodes(fs, d, bound > LIST_AFTER ? listed : one)));
    }
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
