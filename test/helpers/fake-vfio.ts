/**
 * A fake VFIO kernel behind the VfioSys port (src/vfio/sys.ts): open/close/ioctl on
 * /dev/vfio/vfio, /dev/vfio/N, /dev/iommu and /dev/vfio/devices/vfioX, answering with
 * buffers laid out by hand from include/uapi/linux/vfio.h (not with src/vfio/uapi.ts's
 * encoders, so a wrong offset there shows up here). It records every call, and which fds
 * are open, so tests see the order of closes and that nothing leaks.
 */
import type { SysResult, VfioSys } from '../../src/vfio/sys.js';

export interface FakeDevice {
  bdf: string;
  group: number;
  cdev?: string;
  /** VFIO_DEVICE_FLAGS_* bits. */
  infoFlags?: number;
  regions?: number;
  irqs?: number;
  /** Capability chain entries (id, version) appended after the 24-byte info when CAPS is set. */
  caps?: { id: number; version: number }[];
  /** VFIO_MIGRATION_* flags, or null: no migration (ENOTTY). */
  migration?: number | null;
  dirtyTracking?: boolean;
  lowPower?: boolean;
  /** INFO entries (segment:bus:devfn from the bdf, id = group or devid), or an errno. */
  hotReset?: { bdf: string; id: number }[] | string;
}

export interface FakeVfioOptions {
  devices: FakeDevice[];
  /** Groups another process holds: open(/dev/vfio/N) answers EBUSY. */
  busyGroups?: number[];
  /** Group numbers the kernel says are not viable. */
  notViable?: number[];
  /** cdevs bound by another process: BIND_IOMMUFD answers EINVAL. */
  boundCdevs?: string[];
  /** ioctls that fail: request name → errno. */
  fail?: Record<string, string>;
  /** How many times INFO answers EAGAIN before it succeeds (the topology changed). */
  infoEagain?: number;
}

type Kind = { kind: 'container' } | { kind: 'group'; group: number } | { kind: 'device'; dev: FakeDevice; viaCdev: boolean; bound: boolean } | { kind: 'iommufd' };

const IO = (nr: number) => (0x3b << 8) | nr;
const NAMES: Record<number, string> = {
  [IO(100)]: 'VFIO_GET_API_VERSION', [IO(101)]: 'VFIO_CHECK_EXTENSION', [IO(102)]: 'VFIO_SET_IOMMU', [IO(103)]: 'VFIO_GROUP_GET_STATUS',
  [IO(104)]: 'VFIO_GROUP_SET_CONTAINER', [IO(106)]: 'VFIO_GROUP_GET_DEVICE_FD', [IO(107)]: 'VFIO_DEVICE_GET_INFO',
  [IO(112)]: 'VFIO_DEVICE_GET_PCI_HOT_RESET_INFO', [IO(117)]: 'VFIO_DEVICE_FEATURE', [IO(118)]: 'VFIO_DEVICE_BIND_IOMMUFD',
  [IO(119)]: 'VFIO_DEVICE_ATTACH_IOMMUFD_PT', [IO(0x80)]: 'IOMMU_DESTROY', [IO(0x81)]: 'IOMMU_IOAS_ALLOC',
};

export class FakeVfio implements VfioSys {
  readonly calls: string[] = [];
  readonly open_ = new Map<number, Kind>();
  private nextFd = 100;
  private eagain: number;
  private containerSet = false;

  constructor(private readonly o: FakeVfioOptions) {
    this.eagain = o.infoEagain ?? 0;
  }

  get openFds(): number[] {
    return [...this.open_.keys()];
  }

  private add(k: Kind): SysResult {
    const fd = this.nextFd++;
    this.open_.set(fd, k);
    return { ok: true, value: fd };
  }

  open(path: string): SysResult {
    this.calls.push(`open ${path.replace(/^.*\/dev\//, '/dev/')}`);
    if (path.endsWith('/dev/vfio/vfio')) return this.add({ kind: 'container' });
    if (path.endsWith('/dev/iommu')) return this.add({ kind: 'iommufd' });
    const g = /\/dev\/vfio\/(\d+)$/.exec(path);
    if (g) {
      const group = Number(g[1]);
      if (this.o.busyGroups?.includes(group)) return { ok: false, errno: 'EBUSY' };
      if (!this.o.devices.some((d) => d.group === group)) return { ok: false, errno: 'ENOENT' };
      return this.add({ kind: 'group', group });
    }
    const c = /\/dev\/vfio\/devices\/(vfio\d+)$/.exec(path);
    if (c) {
      const dev = this.o.devices.find((d) => d.cdev === c[1]);
      if (!dev) return { ok: false, errno: 'ENOENT' };
      return this.add({ kind: 'device', dev, viaCdev: true, bound: false });
    }
    return { ok: false, errno: 'ENOENT' };
  }

  close(fd: number): void {
    const k = this.open_.get(fd);
    this.calls.push(`close ${k?.kind ?? 'bad-fd'}`);
    this.open_.delete(fd);
  }

  ioctl(fd: number, request: number, arg?: Buffer | number): SysResult {
    const name = NAMES[request] ?? `0x${request.toString(16)}`;
    this.calls.push(name);
    const k = this.open_.get(fd);
    if (!k) return { ok: false, errno: 'EBADF' };
    const failing = this.o.fail?.[name];
    if (failing) return { ok: false, errno: failing };
    const b = Buffer.isBuffer(arg) ? arg : undefined;
    switch (name) {
      case 'VFIO_GET_API_VERSION': return { ok: true, value: 0 };
      case 'VFIO_CHECK_EXTENSION': return { ok: true, value: arg === 3 ? 1 : 0 };
      case 'VFIO_SET_IOMMU': return this.containerSet && arg === 3 ? { ok: true, value: 0 } : { ok: false, errno: 'EINVAL' };
      case 'VFIO_GROUP_GET_STATUS': {
        if (k.kind !== 'group' || !b || b.readUInt32LE(0) < 8) return { ok: false, errno: 'EINVAL' };
        b.writeUInt32LE((this.o.notViable?.includes(k.group) ? 0 : 1) | (this.containerSet ? 2 : 0), 4);
        return { ok: true, value: 0 };
      }
      case 'VFIO_GROUP_SET_CONTAINER': {
        if (k.kind !== 'group' || !b) return { ok: false, errno: 'EINVAL' };
        const target = this.open_.get(b.readInt32LE(0));
        if (target?.kind !== 'container') return { ok: false, errno: 'EBADF' };
        this.containerSet = true;
        return { ok: true, value: 0 };
      }
      case 'VFIO_GROUP_GET_DEVICE_FD': {
        if (k.kind !== 'group' || !b) return { ok: false, errno: 'EINVAL' };
        const nul = b.indexOf(0);
        const want = b.toString('latin1', 0, nul < 0 ? b.length : nul);
        const dev = this.o.devices.find((d) => d.bdf === want && d.group === k.group);
        if (!dev) return { ok: false, errno: 'ENODEV' };
        if (!this.containerSet) return { ok: false, errno: 'EINVAL' };
        return this.add({ kind: 'device', dev, viaCdev: false, bound: true });
      }
      case 'VFIO_DEVICE_BIND_IOMMUFD': {
        if (k.kind !== 'device' || !b || b.readUInt32LE(0) < 16) return { ok: false, errno: 'EINVAL' };
        if (this.o.boundCdevs?.includes(k.dev.cdev ?? '')) return { ok: false, errno: 'EINVAL' };
        if (this.o.busyGroups?.includes(k.dev.group)) return { ok: false, errno: 'EBUSY' };
        if (this.open_.get(b.readInt32LE(8))?.kind !== 'iommufd') return { ok: false, errno: 'EBADF' };
        k.bound = true;
        b.writeUInt32LE(7, 12); // out_devid
        return { ok: true, value: 0 };
      }
      case 'IOMMU_IOAS_ALLOC': {
        if (k.kind !== 'iommufd' || !b || b.readUInt32LE(0) < 12) return { ok: false, errno: 'EINVAL' };
        b.writeUInt32LE(2, 8); // out_ioas_id
        return { ok: true, value: 0 };
      }
      case 'VFIO_DEVICE_ATTACH_IOMMUFD_PT': return k.kind === 'device' && b && b.readUInt32LE(8) === 2 ? { ok: true, value: 0 } : { ok: false, errno: 'ENOENT' };
      case 'IOMMU_DESTROY': return k.kind === 'iommufd' && b && b.readUInt32LE(4) === 2 ? { ok: true, value: 0 } : { ok: false, errno: 'ENOENT' };
    }
    if (k.kind !== 'device' || !k.bound || !b) return { ok: false, errno: 'EINVAL' };
    const dev = k.dev;
    switch (name) {
      case 'VFIO_DEVICE_GET_INFO': {
        // struct vfio_device_info: argsz, flags, num_regions, num_irqs, cap_offset, pad; then caps.
        const caps = dev.caps ?? [];
        const need = 24 + caps.length * 8;
        const argsz = b.readUInt32LE(0);
        let flags = dev.infoFlags ?? 0b11;
        if (caps.length) flags |= 1 << 7;
        b.writeUInt32LE(flags, 4);
        b.writeUInt32LE(dev.regions ?? 9, 8);
        b.writeUInt32LE(dev.irqs ?? 5, 12);
        if (caps.length) {
          if (argsz < need) {
            b.writeUInt32LE(need, 0);
            b.writeUInt32LE(0, 16);
          } else {
            b.writeUInt32LE(24, 16);
            caps.forEach((c, i) => {
              const off = 24 + i * 8;
              b.writeUInt16LE(c.id, off);
              b.writeUInt16LE(c.version, off + 2);
              b.writeUInt32LE(i === caps.length - 1 ? 0 : off + 8, off + 4);
            });
          }
        }
        return { ok: true, value: 0 };
      }
      case 'VFIO_DEVICE_FEATURE': {
        const flags = b.readUInt32LE(4);
        const feature = flags & 0xffff;
        const probe = (flags & (1 << 18)) !== 0;
        const get = (flags & (1 << 16)) !== 0;
        const set = (flags & (1 << 17)) !== 0;
        if (feature === 1) {
          if (dev.migration === null || dev.migration === undefined) return { ok: false, errno: 'ENOTTY' };
          if (set) return { ok: false, errno: 'EINVAL' };
          if (probe) return { ok: true, value: 0 };
          if (!get || b.readUInt32LE(0) < 16) return { ok: false, errno: 'EINVAL' };
          b.writeUInt32LE(dev.migration, 8);
          b.writeUInt32LE(0, 12);
          return { ok: true, value: 0 };
        }
        if (feature === 6) return dev.dirtyTracking ? (probe && set ? { ok: true, value: 0 } : { ok: false, errno: 'EINVAL' }) : { ok: false, errno: 'ENOTTY' };
        if (feature === 3) return dev.lowPower ? (probe && set ? { ok: true, value: 0 } : { ok: false, errno: 'EINVAL' }) : { ok: false, errno: 'ENOTTY' };
        return { ok: false, errno: 'ENOTTY' };
      }
      case 'VFIO_DEVICE_GET_PCI_HOT_RESET_INFO': {
        const argsz = b.readUInt32LE(0);
        if (argsz < 12) return { ok: false, errno: 'EINVAL' };
        if (typeof dev.hotReset === 'string') return { ok: false, errno: dev.hotReset };
        if (this.eagain > 0) {
          this.eagain--;
          return { ok: false, errno: 'EAGAIN' };
        }
        const entries = dev.hotReset ?? [{ bdf: dev.bdf, id: dev.group }];
        b.writeUInt32LE(k.viaCdev ? 1 : 0, 4);
        b.writeUInt32LE(entries.length, 8);
        if (argsz < 12 + 8 * entries.length) return { ok: false, errno: 'ENOSPC' };
        entries.forEach((e, i) => {
          const m = /^([0-9a-f]{4}):([0-9a-f]{2}):([0-9a-f]{2})\.([0-7])$/.exec(e.bdf)!;
          const off = 12 + i * 8;
          b.writeUInt32LE(e.id, off); // group_id / devid
          b.writeUInt16LE(parseInt(m[1]!, 16), off + 4); // segment
          b.writeUInt8(parseInt(m[2]!, 16), off + 6); // bus
          b.writeUInt8((parseInt(m[3]!, 16) << 3) | Number(m[4]), off + 7); // devfn
        });
        return { ok: true, value: 0 };
      }
    }
    return { ok: false, errno: 'ENOTTY' };
  }
}
