import { isBdf, parseBdf, type Bdf } from '../model/address.js';
import type { Host } from '../model/types.js';
import { notFound, usageError } from '../errors.js';
import { quoteShort } from '../model/names.js';
import type { FsRoot } from './fsroot.js';
import { CLASS_BLOCK, CLASS_NET, SYS_BLOCK } from './paths.js';

export interface SelectorOptions {
  /** Accept `VENDOR:DEVICE` (every matching function). */
  ids?: boolean;
  /** Accept `group:N` (every member of the group). */
  groups?: boolean;
}

/** Longest selector accepted (interface names are at most 15 characters, block devices 31). */
export const SELECTOR_MAX = 64;

export const VENDOR_DEVICE = /^([0-9a-fA-F]{4}):([0-9a-fA-F]{4})$/;
export const GROUP = /^group:(\d+)$/;

/** The PCI function a net or block class device hangs below: the last BDF in its real path. */
function pciAncestor(fs: FsRoot, classDir: string, name: string): Bdf | null | undefined {
  // Lexical target when the link dangles: captured trees (ghw snapshots) keep the class
  // links but not always the directories they point to.
  const real = fs.realpath(`${classDir}/${name}`) ?? fs.linkTarget(`${classDir}/${name}`);
  if (real === undefined) return undefined;
  const bdfs = real.split('/').filter(isBdf);
  return bdfs[bdfs.length - 1] ?? null;
}

/** Suggest the canonical form of something that looks like a mistyped address. */
function addressHint(text: string): string | undefined {
  const m = /^(?:([0-9a-fA-F]{1,8}):)?([0-9a-fA-F]{1,2}):([0-9a-fA-F]{1,2})\.([0-7])$/.exec(text);
  if (!m) return undefined;
  const guess = parseBdf(`${(m[1] ?? '0000').padStart(4, '0')}:${m[2]!.padStart(2, '0')}:${m[3]!.padStart(2, '0')}.${m[4]}`);
  return guess ? `did you mean ${guess}?` : undefined;
}

/**
 * Resolve one selector to PCI functions, sorted. Accepted: full or short BDF, network
 * interface, block device (disk or partition), and where allowed VENDOR:DEVICE and group:N.
 */
export function resolveSelector(fs: FsRoot, host: Host, text: string, opts: SelectorOptions = {}): Bdf[] {
  const sel = text.trim();
  if (sel === '') throw usageError('empty device selector', 'name a PCI address, interface, block device' + (opts.ids ? ', VENDOR:DEVICE' : '') + (opts.groups ? ' or group:N' : ''));
  // Bounded and printable: nothing a device name can be is longer, and an error never echoes more than a prefix.
  if (sel.length > SELECTOR_MAX || /[\u0000-\u001f\u007f-\u009f\s]/.test(sel)) {
    throw usageError(`device selector ${quoteShort(sel)}`, sel.length > SELECTOR_MAX ? `longer than ${SELECTOR_MAX} characters` : 'contains blanks or control characters',
      'name a PCI address (0000:01:00.0 or 01:00.0), interface or block device');
  }

  const bdf = parseBdf(sel);
  if (bdf) {
    if (!host.devices.has(bdf)) throw notFound(`device ${bdf}`, 'no such PCI device', "run 'vfioctl groups' to list devices");
    return [bdf];
  }

  const ids = VENDOR_DEVICE.exec(sel);
  if (ids && opts.ids) {
    const [v, d] = [ids[1]!.toLowerCase(), ids[2]!.toLowerCase()];
    const hits = [...host.devices.values()].filter((x) => x.vendorId === v && x.deviceId === d).map((x) => x.bdf);
    if (hits.length === 0) throw notFound(`devices ${v}:${d}`, 'no PCI function has this vendor:device id', "run 'vfioctl groups' to list devices");
    return hits;
  }

  const group = GROUP.exec(sel);
  if (group && opts.groups) {
    const id = Number(group[1]);
    const g = host.groups.find((x) => x.id === id);
    if (!g) throw notFound(`group ${id}`, 'no such IOMMU group', "run 'vfioctl groups' to list groups", 'no-such-group');
    return [...g.devices];
  }

  // Interface and block device names: never a path.
  if (/^[A-Za-z0-9_.:@-]+$/.test(sel) && sel !== '.' && sel !== '..') {
    for (const [dir, kind] of [[CLASS_NET, 'interface'], [CLASS_BLOCK, 'block device'], [SYS_BLOCK, 'block device']] as const) {
      const hit = pciAncestor(fs, dir, sel);
      if (hit === undefined) continue;
      if (hit === null) throw notFound(`${kind} ${sel}`, 'not backed by a PCI device (virtual)', undefined);
      if (!host.devices.has(hit)) throw notFound(`${kind} ${sel}`, `its PCI device ${hit} is not listed under /sys/bus/pci/devices`);
      return [hit];
    }
  }

  const hint = addressHint(sel);
  if (hint) throw usageError(`malformed PCI address ${quoteShort(sel)}`, 'expected DDDD:BB:DD.F or BB:DD.F in hex', hint);
  const accepted = ['PCI address (0000:01:00.0 or 01:00.0)', 'interface name', 'block device name'];
  if (opts.ids) accepted.push('VENDOR:DEVICE');
  if (opts.groups) accepted.push('group:N');
  throw notFound(`device ${quoteShort(sel)}`, 'no PCI device, interface or block device by that name', `a selector is a ${accepted.join(', ')}`);
}

/** Resolve several selectors; result deduplicated and sorted by address. */
export function resolveSelectors(fs: FsRoot, host: Host, texts: readonly string[], opts: SelectorOptions = {}): Bdf[] {
  const out = new Set<Bdf>();
  for (const t of texts) for (const b of resolveSelector(fs, host, t, opts)) out.add(b);
  return [...host.devices.keys()].filter((b) => out.has(b));
}
