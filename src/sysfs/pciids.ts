import { readFileSync } from 'node:fs';
import type { FsRoot } from './fsroot.js';
import { PCI_IDS_CANDIDATES } from './paths.js';

export interface PciNames {
  vendor(vendorId: string): string | null;
  device(vendorId: string, deviceId: string): string | null;
  subsystem(vendorId: string, deviceId: string, subVendor: string, subDevice: string): string | null;
  /** Subclass name (as lspci prints it, `USB controller` for 0c0330), else the base class name. */
  className(classCode: string): string | null;
}

const NO_NAMES: PciNames = { vendor: () => null, device: () => null, subsystem: () => null, className: () => null };

/**
 * Names from the system's pci.ids (hwdata). The file is over a megabyte, so instead of
 * parsing it whole we find the block of each vendor asked for, on demand, and cache it.
 * The tree's own pci.ids comes first; a tree without one (a capture, --root) gets the first
 * readable file of `fallback` (host paths: ids mean the same on every machine).
 */
export function loadPciNames(fs: FsRoot, fallback: readonly string[] = fs.root === '/' ? [] : PCI_IDS_CANDIDATES): PciNames {
  for (const candidate of PCI_IDS_CANDIDATES) {
    const text = fs.readText(candidate);
    if (text !== undefined) return new PciIds(text);
  }
  for (const hostPath of fallback) {
    try {
      return new PciIds(readFileSync(hostPath, 'utf8'));
    } catch {
      // next candidate
    }
  }
  return NO_NAMES;
}

interface VendorBlock {
  name: string;
  devices: Map<string, { name: string; subsystems: Map<string, string> }>;
}

export class PciIds implements PciNames {
  private readonly vendors = new Map<string, VendorBlock | null>();
  private classes: Map<string, string> | undefined;

  constructor(private readonly text: string) {}

  vendor(vendorId: string): string | null {
    return this.block(vendorId)?.name ?? null;
  }

  device(vendorId: string, deviceId: string): string | null {
    return this.block(vendorId)?.devices.get(deviceId.toLowerCase())?.name ?? null;
  }

  subsystem(vendorId: string, deviceId: string, subVendor: string, subDevice: string): string | null {
    const dev = this.block(vendorId)?.devices.get(deviceId.toLowerCase());
    return dev?.subsystems.get(`${subVendor} ${subDevice}`.toLowerCase()) ?? null;
  }

  className(classCode: string): string | null {
    const classes = (this.classes ??= this.parseClasses());
    const c = classCode.toLowerCase();
    // The prog-if name ("XHCI", "NVM Express") alone would hide what the device is.
    return classes.get(c.slice(0, 4)) ?? classes.get(c.slice(0, 2)) ?? null;
  }

  private block(vendorId: string): VendorBlock | null {
    const id = vendorId.toLowerCase();
    let cached = this.vendors.get(id);
    if (cached === undefined) {
      cached = this.parseVendor(id);
      this.vendors.set(id, cached);
    }
    return cached;
  }

  /** Vendor lines start a line with the id and two spaces; device lines a tab, subsystems two. */
  private parseVendor(id: string): VendorBlock | null {
    const start = this.findLine(`${id}  `);
    if (start < 0) return null;
    const lines = this.linesFrom(start);
    const first = lines.next().value as string;
    const block: VendorBlock = { name: first.slice(id.length + 2).trim(), devices: new Map() };
    let current: { name: string; subsystems: Map<string, string> } | undefined;
    for (const line of lines) {
      if (line === '' || line.startsWith('#')) continue;
      if (line.startsWith('\t\t')) {
        const m = /^\t\t([0-9a-f]{4}) ([0-9a-f]{4})\s+(.*)$/.exec(line);
        if (m && current) current.subsystems.set(`${m[1]} ${m[2]}`, m[3]!.trim());
      } else if (line.startsWith('\t')) {
        const m = /^\t([0-9a-f]{4})\s+(.*)$/.exec(line);
        if (m) block.devices.set(m[1]!, (current = { name: m[2]!.trim(), subsystems: new Map() }));
      } else break;
    }
    return block;
  }

  private parseClasses(): Map<string, string> {
    const map = new Map<string, string>();
    const start = this.findLine('C ');
    if (start < 0) return map;
    let cls = '';
    let sub = '';
    for (const line of this.linesFrom(start)) {
      if (line === '' || line.startsWith('#')) continue;
      let m: RegExpExecArray | null;
      if ((m = /^C ([0-9a-f]{2})\s+(.*)$/.exec(line))) map.set((cls = m[1]!), m[2]!.trim());
      else if ((m = /^\t\t([0-9a-f]{2})\s+(.*)$/.exec(line))) map.set(cls + sub + m[1]!, m[2]!.trim());
      else if ((m = /^\t([0-9a-f]{2})\s+(.*)$/.exec(line))) map.set(cls + (sub = m[1]!), m[2]!.trim());
      else if (!line.startsWith('C ')) break;
    }
    return map;
  }

  private findLine(prefix: string): number {
    if (this.text.startsWith(prefix)) return 0;
    const i = this.text.indexOf('\n' + prefix);
    return i < 0 ? -1 : i + 1;
  }

  private *linesFrom(start: number): Generator<string> {
    let pos = start;
    while (pos < this.text.length) {
      let end = this.text.indexOf('\n', pos);
      if (end < 0) end = this.text.length;
      yield this.text.slice(pos, end);
      pos = end + 1;
    }
  }
}
