import type { Bdf } from '../model/address.js';
import type { FsRoot } from '../sysfs/fsroot.js';

/**
 * What a device had before vfioctl gave it to VFIO, so `unbind` can give it back.
 * Kept under /run (tmpfs): after a reboot the host driver owns the device again anyway.
 */
export interface DeviceRecord {
  readonly bdf: Bdf;
  /** Host driver before the first vfioctl bind; null when the device was unbound. */
  readonly driver: string | null;
  /** Module of that driver, for reloading it; null when unknown or built in. */
  readonly module: string | null;
  /** driver_override before the bind (null when unset). */
  readonly override: string | null;
  /** The vfio-family driver vfioctl bound it to. */
  readonly boundTo: string;
  readonly at: string;
}

export const STATE_DIR = '/run/vfioctl/devices';
const recordPath = (bdf: Bdf) => `${STATE_DIR}/${bdf}.json`;

export function readRecord(fs: FsRoot, bdf: Bdf): DeviceRecord | undefined {
  const text = fs.readText(recordPath(bdf));
  if (text === undefined) return undefined;
  try {
    const r = JSON.parse(text) as Partial<DeviceRecord>;
    if (r.bdf !== bdf || typeof r.boundTo !== 'string') return undefined;
    return { bdf, driver: r.driver ?? null, module: r.module ?? null, override: r.override ?? null, boundTo: r.boundTo, at: r.at ?? '' };
  } catch {
    return undefined; // a damaged record is as good as none: unbind falls back to probing
  }
}

export function writeRecord(fs: FsRoot, rec: DeviceRecord): void {
  fs.writeFileAtomic(recordPath(rec.bdf), JSON.stringify({ schemaVersion: 1, ...rec }, null, 2) + '\n');
}

export function removeRecord(fs: FsRoot, bdf: Bdf): void {
  fs.removeFile(recordPath(bdf));
}
