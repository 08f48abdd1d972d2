/**
 * VFIO's and iommufd's user-space ABI, as `include/uapi/linux/vfio.h` and `iommufd.h` (6.12)
 * define it: ioctl numbers, flag bits and the layouts of the structures `probe` exchanges
 * with the kernel. The one place these numbers are written down; test/unit/vfio-uapi.test.ts
 * checks them against what a C program compiled with the kernel headers prints.
 *
 * Pure: encoders return Buffers in the host's byte order (the kernel's), decoders read them.
 */
import { endianness } from 'node:os';

const LE = endianness() === 'LE';

export const u32 = (b: Buffer, off: number): number => (LE ? b.readUInt32LE(off) : b.readUInt32BE(off));
export const s32 = (b: Buffer, off: number): number => (LE ? b.readInt32LE(off) : b.readInt32BE(off));
export const u16 = (b: Buffer, off: number): number => (LE ? b.readUInt16LE(off) : b.readUInt16BE(off));
/** A __u64 of flags: the kernel defines bits below 32 only, so the high word is kept apart. */
export const u64lo = (b: Buffer, off: number): number => u32(b, LE ? off : off + 4);
export const u64hi = (b: Buffer, off: number): number => u32(b, LE ? off + 4 : off);
const put32 = (b: Buffer, off: number, v: number) => (LE ? b.writeUInt32LE(v >>> 0, off) : b.writeUInt32BE(v >>> 0, off));
const puts32 = (b: Buffer, off: number, v: number) => (LE ? b.writeInt32LE(v, off) : b.writeInt32BE(v, off));

/**
 * `_IO(type, nr)`: every VFIO and iommufd ioctl is one (the size travels in `argsz`).
 * `_IOC_NONE` is 0 on x86, arm, riscv and s390, but 1 (at bit 29) on powerpc, mips, sparc
 * and alpha (asm-generic/ioctl.h and the arch overrides).
 */
const IOC_NONE_HIGH = new Set(['ppc', 'ppc64', 'mips', 'mipsel', 'mips64', 'mips64el', 'sparc', 'sparc64', 'alpha']);
export function io(type: number, nr: number, arch: string = process.arch): number {
  return ((IOC_NONE_HIGH.has(arch) ? 1 << 29 : 0) | (type << 8) | nr) >>> 0;
}

/** `VFIO_TYPE` and `IOMMUFD_TYPE` are both ';'. */
const VFIO_TYPE = 0x3b;
const VFIO_BASE = 100;
const IOMMUFD_CMD_BASE = 0x80;

export const VFIO_API_VERSION = 0;
export const VFIO_TYPE1v2_IOMMU = 3;

/** ioctl request numbers, by their header names. */
export const IOCTL = {
  VFIO_GET_API_VERSION: io(VFIO_TYPE, VFIO_BASE + 0),
  VFIO_CHECK_EXTENSION: io(VFIO_TYPE, VFIO_BASE + 1),
  VFIO_SET_IOMMU: io(VFIO_TYPE, VFIO_BASE + 2),
  VFIO_GROUP_GET_STATUS: io(VFIO_TYPE, VFIO_BASE + 3),
  VFIO_GROUP_SET_CONTAINER: io(VFIO_TYPE, VFIO_BASE + 4),
  VFIO_GROUP_UNSET_CONTAINER: io(VFIO_TYPE, VFIO_BASE + 5),
  VFIO_GROUP_GET_DEVICE_FD: io(VFIO_TYPE, VFIO_BASE + 6),
  VFIO_DEVICE_GET_INFO: io(VFIO_TYPE, VFIO_BASE + 7),
  VFIO_DEVICE_GET_PCI_HOT_RESET_INFO: io(VFIO_TYPE, VFIO_BASE + 12),
  VFIO_DEVICE_FEATURE: io(VFIO_TYPE, VFIO_BASE + 17),
  VFIO_DEVICE_BIND_IOMMUFD: io(VFIO_TYPE, VFIO_BASE + 18),
  VFIO_DEVICE_ATTACH_IOMMUFD_PT: io(VFIO_TYPE, VFIO_BASE + 19),
  VFIO_DEVICE_DETACH_IOMMUFD_PT: io(VFIO_TYPE, VFIO_BASE + 20),
  IOMMU_DESTROY: io(VFIO_TYPE, IOMMUFD_CMD_BASE + 0),
  IOMMU_IOAS_ALLOC: io(VFIO_TYPE, IOMMUFD_CMD_BASE + 1),
} as const;
export type IoctlName = keyof typeof IOCTL;

/** Flag bits, by their header names. */
export const FLAG = {
  VFIO_GROUP_FLAGS_VIABLE: 1 << 0,
  VFIO_GROUP_FLAGS_CONTAINER_SET: 1 << 1,
  VFIO_DEVICE_FLAGS_RESET: 1 << 0,
  VFIO_DEVICE_FLAGS_PCI: 1 << 1,
  VFIO_DEVICE_FLAGS_PLATFORM: 1 << 2,
  VFIO_DEVICE_FLAGS_AMBA: 1 << 3,
  VFIO_DEVICE_FLAGS_CCW: 1 << 4,
  VFIO_DEVICE_FLAGS_AP: 1 << 5,
  VFIO_DEVICE_FLAGS_FSL_MC: 1 << 6,
  VFIO_DEVICE_FLAGS_CAPS: 1 << 7,
  VFIO_DEVICE_FLAGS_CDX: 1 << 8,
  VFIO_DEVICE_FEATURE_MASK: 0xffff,
  VFIO_DEVICE_FEATURE_GET: 1 << 16,
  VFIO_DEVICE_FEATURE_SET: 1 << 17,
  VFIO_DEVICE_FEATURE_PROBE: 1 << 18,
  VFIO_DEVICE_FEATURE_MIGRATION: 1,
  VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY: 3,
  VFIO_DEVICE_FEATURE_DMA_LOGGING_START: 6,
  VFIO_MIGRATION_STOP_COPY: 1 << 0,
  VFIO_MIGRATION_P2P: 1 << 1,
  VFIO_MIGRATION_PRE_COPY: 1 << 2,
  VFIO_PCI_HOT_RESET_FLAG_DEV_ID: 1 << 0,
  VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED: 1 << 1,
  VFIO_PCI_DEVID_OWNED: 0,
  VFIO_PCI_DEVID_NOT_OWNED: 0xffffffff,
} as const;

/** Structure sizes (what `sizeof` gives), and field offsets where a decoder needs them. */
export const SIZE = {
  vfio_group_status: 8,
  vfio_device_info: 24,
  vfio_info_cap_header: 8,
  vfio_device_feature: 8,
  vfio_device_feature_migration: 8,
  vfio_pci_hot_reset_info: 12,
  vfio_pci_dependent_device: 8,
  vfio_device_bind_iommufd: 16,
  vfio_device_attach_iommufd_pt: 12,
  iommu_ioas_alloc: 12,
  iommu_destroy: 8,
} as const;

/** `VFIO_DEVICE_FLAGS_*` in bit order, named as in the header without the prefix. */
const DEVICE_FLAG_NAMES = ['RESET', 'PCI', 'PLATFORM', 'AMBA', 'CCW', 'AP', 'FSL_MC', 'CAPS', 'CDX'] as const;
/** `VFIO_MIGRATION_*` in bit order. */
const MIGRATION_FLAG_NAMES = ['STOP_COPY', 'P2P', 'PRE_COPY'] as const;
/** `VFIO_DEVICE_INFO_CAP_*` by id. */
const DEVICE_CAP_NAMES: Record<number, string> = { 1: 'ZPCI_BASE', 2: 'ZPCI_GROUP', 3: 'ZPCI_UTIL', 4: 'ZPCI_PFIP', 5: 'PCI_ATOMIC_COMP' };

/** Set bits as names; a bit the table does not name as `0x…` (a newer kernel's flag is shown, not dropped). */
export function flagNames(value: number, names: readonly string[], high = 0): string[] {
  const out: string[] = [];
  for (let bit = 0; bit < 32; bit++) if (value & (1 << bit)) out.push(names[bit] ?? `0x${(2 ** bit).toString(16)}`);
  for (let bit = 0; bit < 32; bit++) if (high & (1 << bit)) out.push(`0x${(2 ** (bit + 32)).toString(16)}`);
  return out;
}

// --- encoders ---------------------------------------------------------------------------

/** A structure that starts with `argsz` (or iommufd's `size`) and `flags`, zero elsewhere. */
function sized(size: number, flags = 0): Buffer {
  const b = Buffer.alloc(size);
  put32(b, 0, size);
  put32(b, 4, flags);
  return b;
}

export const encodeGroupStatus = (): Buffer => sized(SIZE.vfio_group_status);
/** `VFIO_GROUP_SET_CONTAINER` takes a pointer to the container's fd (an int). */
export function encodeFdArg(fd: number): Buffer {
  const b = Buffer.alloc(4);
  puts32(b, 0, fd);
  return b;
}
/** `VFIO_GROUP_GET_DEVICE_FD` takes the device's name, NUL-terminated. */
export const encodeDeviceName = (bdf: string): Buffer => Buffer.from(`${bdf}\0`, 'latin1');
/** `struct vfio_device_info`, `argsz` bytes (more than the header leaves room for the capability chain). */
export const encodeDeviceInfo = (argsz: number = SIZE.vfio_device_info): Buffer => sized(Math.max(argsz, SIZE.vfio_device_info));
/** `struct vfio_device_feature` with `dataBytes` of payload room. */
export function encodeFeature(flags: number, dataBytes = 0): Buffer {
  return sized(SIZE.vfio_device_feature + dataBytes, flags);
}
/** `struct vfio_pci_hot_reset_info` with room for `count` entries. */
export function encodeHotResetInfo(count: number): Buffer {
  return sized(SIZE.vfio_pci_hot_reset_info + count * SIZE.vfio_pci_dependent_device);
}
export function encodeBindIommufd(iommufd: number): Buffer {
  const b = sized(SIZE.vfio_device_bind_iommufd);
  puts32(b, 8, iommufd);
  return b;
}
export function encodeAttachPt(ptId: number): Buffer {
  const b = sized(SIZE.vfio_device_attach_iommufd_pt);
  put32(b, 8, ptId);
  return b;
}
export const encodeIoasAlloc = (): Buffer => sized(SIZE.iommu_ioas_alloc);
export function encodeDestroy(id: number): Buffer {
  const b = Buffer.alloc(SIZE.iommu_destroy);
  put32(b, 0, SIZE.iommu_destroy);
  put32(b, 4, id);
  return b;
}

// --- decoders ---------------------------------------------------------------------------

export const decodeGroupStatus = (b: Buffer) => ({ viable: (u32(b, 4) & FLAG.VFIO_GROUP_FLAGS_VIABLE) !== 0, containerSet: (u32(b, 4) & FLAG.VFIO_GROUP_FLAGS_CONTAINER_SET) !== 0 });
export const decodeBindIommufd = (b: Buffer) => ({ devId: u32(b, 12) });
export const decodeIoasAlloc = (b: Buffer) => ({ ioasId: u32(b, 8) });

export interface DeviceCap {
  id: number;
  version: number;
  /** The header's name without `VFIO_DEVICE_INFO_CAP_`; null for an id it does not name. */
  name: string | null;
}
export interface DeviceInfo {
  /** What the kernel wants argsz to be (larger than sent: the capability chain did not fit). */
  argsz: number;
  flags: number;
  flagNames: string[];
  regions: number;
  irqs: number;
  capOffset: number;
  caps: DeviceCap[];
}

/**
 * `struct vfio_device_info` and, when `VFIO_DEVICE_FLAGS_CAPS` is set and the chain fit in
 * the buffer, its capability chain (each `struct vfio_info_cap_header`: u16 id, u16 version,
 * u32 next, offsets from the start of the structure). A malformed chain (an offset outside
 * the buffer, or a loop) ends the walk rather than throwing: it is the kernel's answer.
 */
export function decodeDeviceInfo(b: Buffer): DeviceInfo {
  const flags = u32(b, 4);
  const argsz = u32(b, 0);
  const capOffset = u32(b, 16);
  const caps: DeviceCap[] = [];
  if (flags & FLAG.VFIO_DEVICE_FLAGS_CAPS && argsz <= b.length) {
    const seen = new Set<number>();
    for (let off = capOffset; off !== 0 && off + SIZE.vfio_info_cap_header <= b.length && !seen.has(off); off = u32(b, off + 4)) {
      seen.add(off);
      const id = u16(b, off);
      caps.push({ id, version: u16(b, off + 2), name: DEVICE_CAP_NAMES[id] ?? null });
    }
  }
  return { argsz, flags, flagNames: flagNames(flags, DEVICE_FLAG_NAMES), regions: u32(b, 8), irqs: u32(b, 12), capOffset, caps };
}

/** The payload of `VFIO_DEVICE_FEATURE_MIGRATION` GET: a __u64 of `VFIO_MIGRATION_*` flags. */
export function decodeMigration(b: Buffer): { flags: number; flagNames: string[] } {
  const lo = u64lo(b, SIZE.vfio_device_feature);
  const hi = u64hi(b, SIZE.vfio_device_feature);
  return { flags: lo, flagNames: flagNames(lo, MIGRATION_FLAG_NAMES, hi) };
}

export interface DependentDevice {
  bdf: string;
  /** `group_id`, or `devid` when the reply has `VFIO_PCI_HOT_RESET_FLAG_DEV_ID` (cdev mode). */
  id: number;
}
export interface HotResetInfo {
  argsz: number;
  flags: number;
  flagNames: string[];
  /** Entries the kernel has (in an ENOSPC reply: the number needed). */
  count: number;
  devices: DependentDevice[];
}

/** `struct vfio_pci_hot_reset_info` and as many `vfio_pci_dependent_device` entries as `count` and the buffer allow. */
export function decodeHotResetInfo(b: Buffer): HotResetInfo {
  const flags = u32(b, 4);
  const count = u32(b, 8);
  const devices: DependentDevice[] = [];
  for (let i = 0; i < count; i++) {
    const off = SIZE.vfio_pci_hot_reset_info + i * SIZE.vfio_pci_dependent_device;
    if (off + SIZE.vfio_pci_dependent_device > b.length) break;
    const segment = u16(b, off + 4);
    const bus = b[off + 6]!;
    const devfn = b[off + 7]!;
    const hex = (n: number, w: number) => n.toString(16).padStart(w, '0');
    devices.push({ bdf: `${hex(segment, 4)}:${hex(bus, 2)}:${hex(devfn >> 3, 2)}.${devfn & 7}`, id: u32(b, off) });
  }
  return { argsz: u32(b, 0), flags, flagNames: flagNames(flags, ['DEV_ID', 'DEV_ID_OWNED']), count, devices };
}
