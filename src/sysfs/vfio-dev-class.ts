import { isBdf, type Bdf } from '../model/address.js';
import type { FsRoot } from './fsroot.js';
import { CLASS_VFIO_DEV } from './paths.js';

/** A vfio-dev/ entry's name: `vfio0`, or `noiommu-vfio0` where the kernel names it so. */
export const VFIO_DEV_NAME = /^(noiommu-)?vfio\d+$/;

/**
 * Which functions have a vfio-dev/ entry, and its name (the first in order, as a listing of
 * the function's vfio-dev/ gives it), from the vfio-dev class: the driver core links
 * /sys/class/vfio-dev/vfioX to …/BDF/vfio-dev/vfioX for every entry it makes (kernel.md: the
 * class and the entries came together, in 6.1). One listing and a readlink per vfio device
 * instead of a lookup per function.
 *
 * Null where the class cannot answer: a tree (--root) without the class directory, as
 * captures are. At `/` a missing class directory is an answer: vfio is not loaded, or the
 * kernel predates vfio-dev/, and no function has the entry. `listed`: the caller's
 * vfioDevClassEntries answer (null: the class is missing), so the class is listed once.
 */
export function vfioDevsByClass(fs: FsRoot, listed?: string[] | null): ReadonlyMap<Bdf, string> | null {
  // Valid until vfioctl itself writes: a bind makes entries, an unbind removes them.
  const epoch = fs.writes.length;
  const memo = memos.get(fs);
  if (memo !== undefined && memo.epoch === epoch) return memo.names;
  const names = readClass(fs, listed === undefined ? vfioDevClassEntries(fs) : listed ?? undefined);
  memos.set(fs, { epoch, names });
  return names;
}

const memos = new WeakMap<FsRoot, { epoch: number; names: ReadonlyMap<Bdf, string> | null }>();

/** Entries of the vfio-dev class directory; undefined when it is missing. */
export function vfioDevClassEntries(fs: FsRoot): string[] | undefined {
  return fs.isDir(CLASS_VFIO_DEV) ? fs.list(CLASS_VFIO_DEV).filter((n) => VFIO_DEV_NAME.test(n)) : undefined;
}

function readClass(fs: FsRoot, names: string[] | undefined): ReadonlyMap<Bdf, string> | null {
  const byDevice = new Map<Bdf, string>();
  if (names === undefined) return fs.confined ? null : byDevice;
  // fs.list is sorted: the first name per device is the one a listing of its vfio-dev/ gives first.
  for (const name of names) {
    const parts = fs.readLink(`${CLASS_VFIO_DEV}/${name}`)?.split('/');
    if (parts === undefined || parts.length < 3 || parts[parts.length - 1] !== name || parts[parts.length - 2] !== 'vfio-dev') continue;
    const bdf = parts[parts.length - 3]!;
    if (isBdf(bdf) && !byDevice.has(bdf)) byDevice.set(bdf, name);
  }
  return byDevice;
}
