import type { Bdf } from '../model/address.js';
import { isDriverName } from '../model/names.js';
import type { FsRoot } from '../sysfs/fsroot.js';
import { STATE_ROOT } from '../exec/journal.js';

/**
 * What a device had before vfioctl gave it to VFIO, so `unbind` can give it back.
 * Kept under /run (tmpfs): after a reboot the host driver owns the device again anyway.
 * Written and removed only through the executor (as `file` steps), so a failed run puts the
 * record back with the device.
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

export const STATE_DIR = `${STATE_ROOT}/devices`;
export const recordPath = (bdf: Bdf) => `${STATE_DIR}/${bdf}.json`;
/** A record is a few hundred bytes; anything much larger is not one. */
const MAX_RECORD = 16 << 10;

/** The record file's text. Pure. */
export function recordText(rec: DeviceRecord): string {
  return JSON.stringify({ schemaVersion: 1, ...rec }, null, 2) + '\n';
}

const nameOrNull = (x: unknown): x is string | null => x === null || x === undefined || isDriverName(x);

/**
 * The record of a device, fully type-checked: every name in it is checked against the driver
 * name grammar before anything joins it into a path. A malformed record is reported through
 * `warn` and treated as none (unbind then lets the kernel choose).
 */
export function readRecord(fs: FsRoot, bdf: Bdf, warn?: (text: string) => void): DeviceRecord | undefined {
  const p = recordPath(bdf);
  const info = fs.lstatInfo(p);
  if (info === undefined) return undefined;
  const bad = (why: string) => {
    warn?.(`ignoring ${p}: ${why}`);
    return undefined;
  };
  if (info.kind !== 'file') return bad('not a regular file');
  if (info.size > MAX_RECORD) return bad(`larger than ${MAX_RECORD} bytes`);
  const text = fs.readText(p);
  if (text === undefined) return bad('cannot be read');
  let r: Record<string, unknown>;
  try {
    const doc: unknown = JSON.parse(text);
    if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) return bad('not a JSON object');
    r = doc as Record<string, unknown>;
  } catch {
    return bad('not valid JSON');
  }
  if (r.bdf !== bdf) return bad(`names ${typeof r.bdf === 'string' ? JSON.stringify(r.bdf.slice(0, 20)) : 'no device'}, not ${bdf}`);
  if (!isDriverName(r.boundTo)) return bad('boundTo is not a driver name');
  if (!nameOrNull(r.driver)) return bad('driver is not a driver name');
  if (!nameOrNull(r.module)) return bad('module is not a module name');
  if (!nameOrNull(r.override)) return bad('override is not a driver name');
  return {
    bdf,
    driver: (r.driver as string | null | undefined) ?? null,
    module: (r.module as string | null | undefined) ?? null,
    override: (r.override as string | null | undefined) ?? null,
    boundTo: r.boundTo,
    at: typeof r.at === 'string' ? r.at.slice(0, 64) : '',
  };
}
