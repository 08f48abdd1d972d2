/**
 * What an open VFIO device answers: VFIO_DEVICE_GET_INFO (with its capability chain), the
 * features it supports (VFIO_DEVICE_FEATURE with PROBE: migration, DMA logging, low-power
 * entry; GET for the migration flags) and VFIO_DEVICE_GET_PCI_HOT_RESET_INFO. Read-only:
 * a PROBE changes nothing, and GET of the migration feature only reads its flags.
 */
import type { VfioSys } from './sys.js';
import { FLAG, IOCTL, SIZE, decodeDeviceInfo, decodeHotResetInfo, decodeMigration, encodeDeviceInfo, encodeFeature, encodeHotResetInfo, type DeviceInfo, type HotResetInfo } from './uapi.js';

/** Most bytes a capability chain may ask for (the kernel's are tens of bytes). */
const INFO_MAX = 64 << 10;
/** Sizing rounds for hot-reset INFO: the device list can change between two calls (EAGAIN, or a larger count). */
const INFO_ROUNDS = 4;

export interface Queried {
  info: DeviceInfo;
  /** null: the device has no migration support (ENOTTY). */
  migration: { flags: number; flagNames: string[] } | null;
  dirtyTracking: boolean;
  lowPower: boolean;
  hotReset: { ok: true; info: HotResetInfo } | { ok: false; errno: string };
  /** Feature queries that failed with something other than "not supported" (ENOTTY). */
  errors: { query: string; errno: string }[];
}

export class QueryError extends Error {
  constructor(readonly query: string, readonly errno: string) {
    super(`${query}: ${errno}`);
  }
}

export function getDeviceInfo(sys: VfioSys, fd: number): DeviceInfo {
  let buf = encodeDeviceInfo();
  let r = sys.ioctl(fd, IOCTL.VFIO_DEVICE_GET_INFO, buf);
  if (!r.ok) throw new QueryError('VFIO_DEVICE_GET_INFO', r.errno);
  let info = decodeDeviceInfo(buf);
  // The chain did not fit: the kernel says how much room it needs in argsz.
  if (info.flags & FLAG.VFIO_DEVICE_FLAGS_CAPS && info.argsz > buf.length && info.argsz <= INFO_MAX) {
    buf = encodeDeviceInfo(info.argsz);
    r = sys.ioctl(fd, IOCTL.VFIO_DEVICE_GET_INFO, buf);
    if (!r.ok) throw new QueryError('VFIO_DEVICE_GET_INFO', r.errno);
    info = decodeDeviceInfo(buf);
  }
  return info;
}

/** PROBE of one feature: true when supported, false on ENOTTY; anything else is recorded. */
function probeFeature(sys: VfioSys, fd: number, feature: number, op: number, name: string, errors: Queried['errors']): boolean {
  const r = sys.ioctl(fd, IOCTL.VFIO_DEVICE_FEATURE, encodeFeature(FLAG.VFIO_DEVICE_FEATURE_PROBE | op | feature));
  if (r.ok) return true;
  if (r.errno !== 'ENOTTY') errors.push({ query: name, errno: r.errno });
  return false;
}

export function getMigration(sys: VfioSys, fd: number, errors: Queried['errors']): Queried['migration'] {
  if (!probeFeature(sys, fd, FLAG.VFIO_DEVICE_FEATURE_MIGRATION, FLAG.VFIO_DEVICE_FEATURE_GET, 'MIGRATION', errors)) return null;
  const buf = encodeFeature(FLAG.VFIO_DEVICE_FEATURE_GET | FLAG.VFIO_DEVICE_FEATURE_MIGRATION, SIZE.vfio_device_feature_migration);
  const r = sys.ioctl(fd, IOCTL.VFIO_DEVICE_FEATURE, buf);
  if (!r.ok) {
    errors.push({ query: 'MIGRATION', errno: r.errno });
    return null;
  }
  return decodeMigration(buf);
}

/**
 * VFIO_DEVICE_GET_PCI_HOT_RESET_INFO: the first call, with room for none, answers ENOSPC
 * and the count needed; then again with that room (kernel.md §5.5).
 */
export function getHotResetInfo(sys: VfioSys, fd: number): Queried['hotReset'] {
  let count = 0;
  for (let round = 0; round < INFO_ROUNDS; round++) {
    const buf = encodeHotResetInfo(count);
    const r = sys.ioctl(fd, IOCTL.VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, buf);
    const info = decodeHotResetInfo(buf);
    if (r.ok) return { ok: true, info };
    if (r.errno === 'ENOSPC' && info.count > count) count = info.count;
    else if (r.errno !== 'EAGAIN') return { ok: false, errno: r.errno };
  }
  return { ok: false, errno: 'EAGAIN' };
}

export function queryDevice(sys: VfioSys, fd: number): Queried {
  const errors: Queried['errors'] = [];
  const info = getDeviceInfo(sys, fd);
  const migration = getMigration(sys, fd, errors);
  const dirtyTracking = probeFeature(sys, fd, FLAG.VFIO_DEVICE_FEATURE_DMA_LOGGING_START, FLAG.VFIO_DEVICE_FEATURE_SET, 'DMA_LOGGING_START', errors);
  const lowPower = probeFeature(sys, fd, FLAG.VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY, FLAG.VFIO_DEVICE_FEATURE_SET, 'LOW_POWER_ENTRY', errors);
  return { info, migration, dirtyTracking, lowPower, hotReset: getHotResetInfo(sys, fd), errors };
}
