import { isBdf, type Bdf } from '../model/address.js';
import { isVfioBound } from '../model/host.js';
import type { Host, PciDevice } from '../model/types.js';
import type { IommufdFacts, VfioHolder } from '../plan/iommufd-reset.js';
import { kernelRelease } from './scan.js';
import type { FsRoot } from './fsroot.js';
import { CLASS_VFIO_DEV, DEV_VFIO, devicePath } from './paths.js';

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

const VFIO_DEV_NAME = /^(noiommu-)?vfio\d+$/;

/** `vfio0` for the device's vfio-dev/ entry, null without one. */
export function vfioDevName(fs: FsRoot, bdf: Bdf): string | null {
  return fs.list(`${devicePath(bdf)}/vfio-dev`).find((n) => VFIO_DEV_NAME.test(n)) ?? null;
}

/**
 * Each device's vfio-dev/ entry from the class's side: /sys/class/vfio-dev/vfioX links to
 * …/BDF/vfio-dev/vfioX, one for each entry the driver core made under a device (kernel.md:
 * the class exists from 6.1, as vfio-dev/ does). One listing and a readlink per entry,
 * instead of listing every device's vfio-dev/ (5 system calls each). The first name in
 * order per device, as vfioDevName picks; a device the class does not name (a capture
 * without /sys/class) is asked by vfioDevName.
 */
function vfioDevNamesByClass(fs: FsRoot): Map<Bdf, string> {
  const byDevice = new Map<Bdf, string>();
  const names = fs.entries(CLASS_VFIO_DEV);
  if (names === undefined) return byDevice;
  for (const name of [...names].sort()) {
    if (!VFIO_DEV_NAME.test(name)) continue;
    const parts = fs.readLink(`${CLASS_VFIO_DEV}/${name}`)?.split('/');
    if (parts === undefined || parts.length < 3 || parts[parts.length - 1] !== name || parts[parts.length - 2] !== 'vfio-dev') continue;
    const bdf = parts[parts.length - 3]!;
    if (isBdf(bdf) && !byDevice.has(bdf)) byDevice.set(bdf, name);
  }
  return byDevice;
}

/**
 * Whether `name` is in directory `dir`, for the node lookups below. Given a `listed` answer
 * (a reader on many devices lists each directory once), a name missing from the listing
 * is answered without a lookup; inside a --root a listed one is still looked up (lexists:
 * a link leading out of the root counts as missing there, as it does here).
 */
type Lookup = (dir: string, name: string) => boolean;
const lookup = (fs: FsRoot): Lookup => (dir, name) => fs.lexists(`${dir}/${name}`);

/** The device's vfio-dev/ entry when it has a cdev (a device number), else null. */
export function vfioCdevName(fs: FsRoot, bdf: Bdf, has: Lookup = lookup(fs), devName = vfioDevName): string | null {
  const name = devName(fs, bdf);
  if (name === null) return null;
  // The node first: from a listing (vfioNodeReader) it costs no lookup.
  return has(`${DEV_VFIO}/devices`, name) || fs.exists(`${devicePath(bdf)}/vfio-dev/${name}/dev`) ? name : null;
}

/** The group node of a vfio-bound device's group, when the tree shows it. */
function groupNode(group: number, has: Lookup): string | null {
  for (const name of [String(group), `noiommu-${group}`]) {
    if (has(DEV_VFIO, name) || has('/sys/class/vfio', name)) return `${DEV_VFIO}/${name}`;
  }
  return null;
}

export function vfioNodes(fs: FsRoot, d: PciDevice, has: Lookup = lookup(fs), devName = vfioDevName): VfioNodes {
  if (!isVfioBound(d)) return NO_VFIO_NODES;
  const cdev = vfioCdevName(fs, d.bdf, has, devName);
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
 * lookups for each; `show` of one device lists nothing). With `wholeHost` (a command that
 * reads every function anyway: groups), the devices' vfio-dev/ names then come from
 * /sys/class/vfio-dev (vfioDevNamesByClass), whose cost grows with the host's vfio devices,
 * not with the ones asked about.
 */
export function vfioNodeReader(fs: FsRoot, opts: { wholeHost?: boolean } = {}): (d: PciDevice) => VfioNodes {
  const cache = new Map<Bdf, VfioNodes>();
  const listings = new Map<string, ReadonlySet<string> | null>();
  let bound = 0;
  const listed: Lookup = (dir, name) => {
    let names = listings.get(dir);
    if (names === undefined) listings.set(dir, (names = fs.entries(dir) ?? null));
    if (names === null) return fs.lexists(`${dir}/${name}`);
    // At `/` a listed name is there; inside a root it must not lead out of it.
    return names.has(name) && (!fs.confined || fs.lexists(`${dir}/${name}`));
  };
  const one = lookup(fs);
  let byClass: Map<Bdf, string> | undefined;
  const classDevName = (f: FsRoot, bdf: Bdf) => (byClass ??= vfioDevNamesByClass(f)).get(bdf) ?? vfioDevName(f, bdf);
  return (d) => {
    let v = cache.get(d.bdf);
    if (!v) {
      if (isVfioBound(d)) bound++;
      cache.set(d.bdf, (v = bound > LIST_AFTER ? vfioNodes(fs, d, listed, opts.wholeHost ? classDevName : vfioDevName) : vfioNodes(fs, d, one)));
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
