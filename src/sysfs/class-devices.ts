import type { Bdf } from '../model/address.js';
import type { FsRoot } from './fsroot.js';
import { CLASS_BLOCK, CLASS_NET, SYS_BLOCK, devicePath } from './paths.js';

/** Names in a class directory whose device lies below `dir` (the function's real path). */
function below(fs: FsRoot, classDir: string, dir: string): string[] {
  return fs.list(classDir).filter((name) => {
    const real = fs.realpath(`${classDir}/${name}`) ?? fs.linkTarget(`${classDir}/${name}`);
    return real !== undefined && real.startsWith(dir + '/');
  }).sort();
}

/**
 * The network interfaces and block devices (disks, then partitions) a PCI function provides,
 * as `lspci -v` would lead one to them: the class devices that sit below it in sysfs.
 */
export function classDevicesOf(fs: FsRoot, bdf: Bdf): { interfaces: string[]; blockDevices: string[] } {
  const dir = fs.realpath(devicePath(bdf)) ?? devicePath(bdf);
  const block = below(fs, CLASS_BLOCK, dir);
  // Captured trees (ghw) may have /sys/block without /sys/class/block.
  const blockDevices = block.length ? block : below(fs, SYS_BLOCK, dir);
  return { interfaces: below(fs, CLASS_NET, dir), blockDevices };
}
