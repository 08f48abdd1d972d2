import type { Bdf } from '../model/address.js';
import { deviceOf, isVfioBound } from '../model/host.js';
import type { Host } from '../model/types.js';
import type { FsRoot } from './fsroot.js';
import { CLASS_BLOCK, CLASS_NET, DEV_VFIO, devicePath } from './paths.js';
import { readVfioDevName } from './scan.js';

/**
 * Signs that the host (or a VFIO user) is using a device right now, so taking its driver
 * away would break something (issue 4, "Safety"). Everything is read through the root, so
 * a snapshot of /proc and /sys tests the same code.
 */
export interface HostUse {
  code: 'net-up' | 'net-address' | 'net-route' | 'mounted' | 'swap' | 'holders' | 'boot-vga' | 'console-fb' | 'vfio-open';
  detail: string;
}

const IF_INET6 = '/proc/net/if_inet6';
const FIB_TRIE = '/proc/net/fib_trie';
const ROUTE = '/proc/net/route';
const MOUNTINFO = '/proc/self/mountinfo';
const MOUNTS = '/proc/mounts';
const SWAPS = '/proc/swaps';
const CLASS_GRAPHICS = '/sys/class/graphics';
/** IFF_UP in /sys/class/net/X/flags. */
const IFF_UP = 0x1;
/** if_inet6 scope of link-local addresses: every up IPv6 interface has one, so it says nothing. */
const SCOPE_LINK = 0x20;

function lines(fs: FsRoot, path: string): string[] {
  return (fs.readText(path) ?? '').split('\n').filter((l) => l.trim() !== '');
}

/** Little-endian hex from /proc/net/route → dotted quad number. */
const leHex = (h: string) => {
  const n = parseInt(h, 16) >>> 0;
  return (((n & 0xff) << 24) | (((n >>> 8) & 0xff) << 16) | (((n >>> 16) & 0xff) << 8) | ((n >>> 24) & 0xff)) >>> 0;
};
const ipv4 = (s: string) => s.split('.').reduce((a, b) => ((a << 8) | Number(b)) >>> 0, 0);

interface Route { iface: string; dest: number; mask: number }
interface Mount { dev: string | undefined; point: string | undefined; source: string | undefined }

/** Read once on first use, then shared by every device asked about. */
function lazy<T>(read: () => T): () => T {
  let value: { v: T } | undefined;
  return () => (value ??= { v: read() }).v;
}

/** Class devices (net, block, graphics) with their real paths. */
function classDevices(fs: FsRoot, classDir: string): { name: string; real: string | undefined }[] {
  return fs.list(classDir).map((name) => ({ name, real: fs.realpath(`${classDir}/${name}`) }));
}

function readRoutes(fs: FsRoot): Route[] {
  return lines(fs, ROUTE).slice(1).map((l) => l.trim().split(/\s+/)).filter((f) => f.length >= 8)
    .map((f) => ({ iface: f[0]!, dest: leHex(f[1]!), mask: leHex(f[7]!) }));
}

/**
 * Local IPv4 addresses from the fib_trie's local table (`|-- A` followed by `/32 host LOCAL`).
 * The trie does not name interfaces, so they are attributed through the connected routes.
 */
function readLocalIpv4(fs: FsRoot): string[] {
  const out = new Set<string>();
  let last: string | undefined;
  for (const l of lines(fs, FIB_TRIE)) {
    const leaf = /\|--\s+(\d+\.\d+\.\d+\.\d+)/.exec(l);
    if (leaf) last = leaf[1];
    else if (/\/32 host LOCAL/.test(l) && last && !last.startsWith('127.')) out.add(last);
  }
  return [...out];
}

function readMounts(fs: FsRoot): Mount[] {
  // mountinfo: "id parent MAJ:MIN root mountpoint opts … - fstype source superopts"
  const mounts = lines(fs, MOUNTINFO).map((l) => {
    const f = l.split(' ');
    const dash = f.indexOf('-');
    return { dev: f[2], point: f[4], source: dash > 0 ? f[dash + 2] : undefined };
  });
  if (mounts.length > 0) return mounts;
  return lines(fs, MOUNTS).map((l) => { const f = l.split(' '); return { dev: undefined, point: f[1], source: f[0] }; });
}

interface Holder { pid: number; comm: string }
const holderText = (h: Holder) => `pid ${h.pid} (${h.comm})`;

/** Open /dev/vfio files of every process: link target → holders. */
function readOpenFiles(fs: FsRoot): Map<string, Holder[]> {
  const out = new Map<string, Holder[]>();
  for (const pid of fs.list('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    const fdDir = `/proc/${pid}/fd`;
    const targets = new Set(fs.list(fdDir).map((fd) => fs.readLink(`${fdDir}/${fd}`)).filter((t): t is string => t !== undefined && t.startsWith(DEV_VFIO + '/')));
    if (targets.size === 0) continue;
    const comm = fs.read(`/proc/${pid}/comm`)?.trim() ?? '?';
    for (const t of targets) (out.get(t) ?? out.set(t, []).get(t)!).push({ pid: Number(pid), comm });
  }
  return out;
}

function ifaceUp(fs: FsRoot, iface: string): boolean {
  const flags = fs.read(`${CLASS_NET}/${iface}/flags`);
  if (flags !== undefined && /^0x[0-9a-f]+$/i.test(flags.trim())) return (parseInt(flags, 16) & IFF_UP) !== 0;
  const state = fs.read(`${CLASS_NET}/${iface}/operstate`)?.trim();
  return state !== undefined && state !== 'down' && state !== 'notpresent' && state !== 'lowerlayerdown';
}

/**
 * A checker for many devices: the host-wide tables (routes, addresses, mounts, swaps, class
 * devices, every process's open /dev/vfio files) are read once, on first need, not per device.
 * Make a new one per command run: it does not see changes made after it read them.
 */
export function hostUseChecker(fs: FsRoot, host: Host): (bdf: Bdf) => HostUse[] {
  const net = lazy(() => classDevices(fs, CLASS_NET));
  const block = lazy(() => classDevices(fs, CLASS_BLOCK));
  const graphics = lazy(() => classDevices(fs, CLASS_GRAPHICS).filter((g) => /^fb\d+$/.test(g.name)));
  const routes = lazy(() => readRoutes(fs));
  const v4 = lazy(() => readLocalIpv4(fs));
  const v6 = lazy(() => lines(fs, IF_INET6).map((l) => l.trim().split(/\s+/)).filter((f) => f.length >= 6));
  const mounts = lazy(() => readMounts(fs));
  const swaps = lazy(() => lines(fs, SWAPS).slice(1).map((l) => l.split(/\s+/)[0]!));
  const openFiles = lazy(() => readOpenFiles(fs));
  const below = (list: { name: string; real: string | undefined }[], dir: string) => list.filter((c) => c.real?.startsWith(dir + '/')).map((c) => c.name);

  const netUses = (ifaces: string[]): HostUse[] => {
    const out: HostUse[] = [];
    for (const iface of ifaces) {
      const up = ifaceUp(fs, iface);
      const mine = routes().filter((r) => r.iface === iface);
      const addrs = [
        ...v4().filter((a) => mine.some((r) => r.mask !== 0 && ((ipv4(a) & r.mask) >>> 0) === r.dest)),
        ...v6().filter((f) => f[5] === iface && (parseInt(f[3]!, 16) & SCOPE_LINK) === 0).map((f) => f[0]!.replace(/(.{4})(?!$)/g, '$1:')),
      ];
      if (up && addrs.length > 0) out.push({ code: 'net-address', detail: `interface ${iface} is up with address ${addrs.join(', ')}` });
      else if (up) out.push({ code: 'net-up', detail: `interface ${iface} is up` });
      if (mine.length > 0) out.push({ code: 'net-route', detail: `interface ${iface} is in the routing table (${mine.length} route${mine.length === 1 ? '' : 's'})` });
    }
    return out;
  };

  const blockUses = (names: string[]): HostUse[] => {
    const out: HostUse[] = [];
    for (const name of names) {
      const dev = fs.read(`${CLASS_BLOCK}/${name}/dev`)?.trim();
      const hits = mounts().filter((m) => (dev !== undefined && m.dev === dev) || m.source === `/dev/${name}`);
      for (const m of hits) out.push({ code: 'mounted', detail: `${name} is mounted on ${m.point ?? '?'}` });
      if (swaps().includes(`/dev/${name}`)) out.push({ code: 'swap', detail: `${name} is in use as swap` });
      const holders = fs.list(`${CLASS_BLOCK}/${name}/holders`);
      if (holders.length > 0) out.push({ code: 'holders', detail: `${name} is held by ${holders.join(', ')} (device-mapper, md or LVM)` });
    }
    return out;
  };

  const vfioUses = (bdf: Bdf, dir: string): HostUse[] => {
    const d = deviceOf(host, bdf);
    if (!isVfioBound(d)) return [];
    const out: HostUse[] = [];
    // vfio-pci enables the device only while a user holds its device fd (kernel.md §11 (i)).
    const enable = Number.parseInt(fs.read(`${dir}/enable`) ?? '0', 10);
    if (enable > 0) out.push({ code: 'vfio-open', detail: `a VFIO user has the device open (enable=${enable})` });
    const nodes: string[] = [];
    if (d.iommuGroup !== null) nodes.push(`${DEV_VFIO}/${d.iommuGroup}`, `${DEV_VFIO}/noiommu-${d.iommuGroup}`);
    const vfioDev = readVfioDevName(fs, bdf);
    if (vfioDev !== null) nodes.push(`${DEV_VFIO}/devices/${vfioDev}`);
    const holders = new Map<string, string[]>();
    for (const node of nodes) for (const who of (openFiles().get(node) ?? []).map(holderText)) (holders.get(who) ?? holders.set(who, []).get(who)!).push(node);
    for (const [who, held] of holders) out.push({ code: 'vfio-open', detail: `${who} holds ${held.join(', ')}` });
    return out;
  };

  return (bdf) => {
    const dir = fs.realpath(devicePath(bdf)) ?? devicePath(bdf);
    const d = deviceOf(host, bdf);
    const out: HostUse[] = [...netUses(below(net(), dir)), ...blockUses(below(block(), dir))];
    if (d.bootVga) out.push({ code: 'boot-vga', detail: 'boot VGA device (boot_vga=1)' });
    for (const fb of graphics()) {
      if (fs.realpath(`${CLASS_GRAPHICS}/${fb.name}/device`) === dir) out.push({ code: 'console-fb', detail: `drives framebuffer ${fb.name} (console)` });
    }
    out.push(...vfioUses(bdf, dir));
    return out;
  };
}

/** Every reason not to take this device's driver away, empty when none is found. */
export function hostUse(fs: FsRoot, host: Host, bdf: Bdf): HostUse[] {
  return hostUseChecker(fs, host)(bdf);
}

/**
 * Which processes hold a vfio-bound device's group node or cdev open (a cdev open is a
 * /proc/PID/fd link to /dev/vfio/devices/vfioX; the device fd of a group user is an anonymous
 * inode, so the group node stands for it). For the iommufd hot-reset answer.
 */
export function vfioHolders(fs: FsRoot, host: Host): (bdf: Bdf) => { pid: number; via: 'group' | 'cdev' }[] {
  const openFiles = lazy(() => readOpenFiles(fs));
  return (bdf) => {
    const d = host.devices.get(bdf);
    if (!d || !isVfioBound(d)) return [];
    const out: { pid: number; via: 'group' | 'cdev' }[] = [];
    if (d.iommuGroup !== null) {
      for (const node of [`${DEV_VFIO}/${d.iommuGroup}`, `${DEV_VFIO}/noiommu-${d.iommuGroup}`]) for (const h of openFiles().get(node) ?? []) out.push({ pid: h.pid, via: 'group' });
    }
    const vfioDev = readVfioDevName(fs, bdf);
    if (vfioDev !== null) for (const h of openFiles().get(`${DEV_VFIO}/devices/${vfioDev}`) ?? []) out.push({ pid: h.pid, via: 'cdev' });
    return out;
  };
}
