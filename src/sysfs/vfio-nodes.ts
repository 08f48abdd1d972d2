import { isBdf, type Bdf } from '../model/address.js';
import { isVfioBound } from '../model/host.js';
import type { Host, PciDevice } from '../model/types.js';
import type { IommufdFacts, VfioHolder } from '../plan/iommufd-reset.js';
import { kernelRelease } from './scan.js';
import type { FsRoot } from './fsroot.js';
import { DEV_VFIO, PROC_DEVICES, devicePath } from './paths.js';
import { VFIO_DEV_NAME, vfioDevsByClass } from './vfio-dev-class.js';

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
  return fs.list(`${devicePath(bdf)}/vfio-dev`).find((n) => VFIO_DEV_NAME.test(n)) ?? null;
}

/**
 * Whether any vfio device can have a cdev: the kernel registers the `vfio-dev` character
 * major only when built with VFIO_DEVICE_CDEV (vfio_cdev_init), so /proc/devices without it
 * answers no for every device, where asking each device's vfio-dev/vfioX/dev costs a failed
 * lookup apiece (most of the JSON's lookups on a 6.1 host with 5,000 vfio-bound VFs).
 * Undefined when /proc/devices does not say (a capture without it): ask each device.
 */
function cdevMajorRegistered(fs: FsRoot): boolean | undefined {
  const text = fs.read(PROC_DEVICES);
  if (text === undefined) return undefined;
  const chars = /^Character devices:\n([\s\S]*?)(?:\n\n|\nBlock devices:|$)/.exec(text);
  if (!chars) return undefined;
  return chars[1]!.split('\n').some((line) => /^\s*\d+\s+vfio-dev$/.test(line));
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
export function vfioCdevName(fs: FsRoot, bdf: Bdf, has: Lookup = lookup(fs), devName = vfioDevName, cdevsPossible = true): string | null {
  const name = devName(fs, bdf);
  if (name === null) return null;
  // The node first: from a listing (vfioNodeReader) it costs no lookup.
  return has(`${DEV_VFIO}/devices`, name) || (cdevsPossible && fs.exists(`${devicePath(bdf)}/vfio-dev/${name}/dev`)) ? name : null;
}

/** The group node of a vfio-bound device's group, when the tree shows it. */
function groupNode(group: number, has: Lookup): string | null {
  for (const name of [String(group), `noiommu-${group}`]) {
    if (has(DEV_VFIO, name) || has('/sys/class/vfio', name)) return `${DEV_VFIO}/${name}`;
  }
  return null;
}

export function vfioNodes(fs: FsRoot, d: PciDevice, has: Lookup = lookup(fs), devName = vfioDevName, cdevsPossible = true): VfioNodes {
  if (!isVfioBound(d)) return NO_VFIO_NODES;
  const cdev = vfioCdevName(fs, d.bdf, has, devName, cdevsPossible);
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
 * /sys/class/vfio-dev (vfioDevsByClass, shared with the scan), whose cost grows with the
 * host's vfio devices, not with the ones asked about; and where /proc/devices shows no
 * `vfio-dev` major, no device's `dev` file is looked for (cdevMajorRegistered).
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
  let byClass: ReadonlyMap<Bdf, string> | null | undefined;
  const classDevName = (f: FsRoot, bdf: Bdf) => {
    byClass ??= vfioDevsByClass(f);
    return byClass === null ? vfioDevName(f, bdf) : byClass.get(bdf) ?? (f.confined ? vfioDevName(f, bdf) : null);
  };
  let cdevs: boolean | undefined;
  return (d) => {
    let v = cache.get(d.bdf);
    if (!v) {
      if (isVfioBound(d)) bound++;
      if (bound > LIST_AFTER) cdevs ??= cdevMajorRegistered(fs) ?? true;
      cache.set(d.bdf, (v = bound > LIST_AFTER ? vfioNodes(fs, d, listed, opts.wholeHost ? classDevName : vfioDevName, cdevs) : vfioNodes(fs, d, one)));
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
