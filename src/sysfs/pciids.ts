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
 * Only the names asked for are decoded as UTF-8: decoding the whole file (it has a few
 * non-ASCII names, so V8 made a two-byte string of all of it) cost 4–5 ms of every `show`,
 * and walking a vendor's block line by line (Intel's has thousands) cost 3 ms more.
 * The bytes are searched as they are (Buffer#indexOf): a latin1 string of the whole file
 * cost 1 ms to make and V8's first search in it 4 ms, where the Buffer's takes 0.5 ms.
 * The tree's own pci.ids comes first; a tree without one (a capture, --root) gets the first
 * readable file of `fallback` (host paths: ids mean the same on every machine).
 */
export function loadPciNames(fs: FsRoot, fallback: readonly string[] = fs.root === '/' ? [] : PCI_IDS_CANDIDATES): PciNames {
  for (const candidate of PCI_IDS_CANDIDATES) {
    const bytes = fs.readBytes(candidate);
    if (bytes !== undefined) return new PciIds(bytes);
  }
  for (const hostPath of fallback) {
    try {
      return new PciIds(readFileSync(hostPath));
    } catch {
      // next candidate
    }
  }
  return NO_NAMES;
}

/** A vendor's block of lines [start, end) and the lookups made in it. */
interface VendorBlock {
  name: string;
  start: number;
  end: number;
  devices: Map<string, DeviceLines | null>;
}
interface DeviceLines {
  name: string;
  start: number;
  end: number;
  subsystems: Map<string, string | null>;
}

/** The first line after a vendor line that is not part of its block (not a tab, comment or blank line). */
const VENDOR_BLOCK_END = /\n[^\t#\n]/g;
/** The first device line (one tab) after a device line: where its subsystem lines end. */
const DEVICE_LINES_END = /\n\t(?!\t)/g;
const NEWLINE = 0x0a;
/** lineAfter's first window, in bytes; each next one is four times larger. */
export const LINE_AFTER_WINDOW = 16 << 10;

export class PciIds implements PciNames {
  private readonly vendors = new Map<string, VendorBlock | null>();
  private classes: Map<string, string> | undefined;
  /** The file's bytes: searched as they are, and only the names asked for decoded (UTF-8). */
  private readonly bytes: Buffer;

  constructor(content: Buffer | string) {
    this.bytes = typeof content === 'string' ? Buffer.from(content, 'utf8') : content;
  }

  vendor(vendorId: string): string | null {
    return this.block(vendorId)?.name ?? null;
  }

  device(vendorId: string, deviceId: string): string | null {
    return this.deviceLines(vendorId, deviceId)?.name ?? null;
  }

  subsystem(vendorId: string, deviceId: string, subVendor: string, subDevice: string): string | null {
    const dev = this.deviceLines(vendorId, deviceId);
    if (!dev) return null;
    const key = `${subVendor} ${subDevice}`.toLowerCase();
    let name = dev.subsystems.get(key);
    if (name === undefined) {
      // `\t\tSSSS DDDD  name` below the device.
      name = this.firstLine(`\n\t\t${key}`, dev.start, dev.end);
      dev.subsystems.set(key, name);
    }
    return name;
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
      cached = this.findVendor(id);
      this.vendors.set(id, cached);
    }
    return cached;
  }

  private deviceLines(vendorId: string, deviceId: string): DeviceLines | null {
    const block = this.block(vendorId);
    if (!block) return null;
    const id = deviceId.toLowerCase();
    let cached = block.devices.get(id);
    if (cached === undefined) {
      cached = null;
      const at = this.firstLineAt(`\n\t${id}`, block.start, block.end);
      if (at >= 0) {
        const eol = this.eol(at + 1);
        // Its subsystem lines (two tabs) run to the next device line or the block's end.
        const pos = this.lineAfter(DEVICE_LINES_END, eol);
        cached = { name: this.name(at + 2 + id.length, eol), start: eol, end: Math.min(pos, block.end), subsystems: new Map() };
      }
      block.devices.set(id, cached);
    }
    return cached;
  }

  /** Vendor lines start a line with the id and two spaces; its block runs over the lines that start with a tab (or are comments or blank). */
  private findVendor(id: string): VendorBlock | null {
    const start = this.findLine(`${id}  `);
    if (start < 0) return null;
    const eol = this.eol(start);
    const pos = this.lineAfter(VENDOR_BLOCK_END, eol);
    return { name: this.name(start + id.length + 2, eol), start: eol, end: Math.min(pos, this.bytes.length), devices: new Map() };
  }

  /** End of the line starting at `pos` (the text's end on the last line). */
  private eol(pos: number): number {
    const e = this.bytes.indexOf(NEWLINE, pos);
    return e < 0 ? this.bytes.length : e;
  }

  /**
   * Start of the first line after offset `from` that `pattern` (a newline and what starts
   * the line) finds; the file's end without one. The bytes are decoded as latin1 (one
   * character per byte, so indices stay byte offsets) a window at a time: the line is
   * usually near, and a vendor's block (Intel's is a quarter of the file) need not be
   * decoded past it.
   */
  private lineAfter(pattern: RegExp, from: number): number {
    const size = this.bytes.length;
    for (let start = from, window = LINE_AFTER_WINDOW; start < size; start += window - 2, window *= 4) {
      // Windows overlap by two bytes, so a match across their border (a newline and the
      // next line's first byte) is found in the later one; a match in a window's last two
      // bytes waits for it too, as a look-ahead there saw the window's end, not the byte.
      const end = Math.min(size, start + window);
      pattern.lastIndex = 0;
      const m = pattern.exec(this.bytes.toString('latin1', start, end));
      if (m !== null && (end === size || start + m.index + 2 < end)) return start + m.index + 1;
      if (end === size) break;
    }
    return size;
  }

  /** The name in bytes [start, end), decoded. */
  private name(start: number, end: number): string {
    return this.bytes.toString('utf8', start, end).trim();
  }

  /**
   * Index of the newline before the first line in [start, end) that starts with `prefix`
   * (after the newline) followed by whitespace and a name, as the line formats require; -1
   * when none. The first is the only one: lspci refuses a pci.ids with a duplicate entry.
   * The search stops at `end`: a device missing from its vendor's block (Intel's is a
   * quarter of the file) is not looked for in the rest of the file.
   */
  private firstLineAt(prefix: string, start: number, end: number): number {
    const block = this.bytes.subarray(start, end);
    for (let i = block.indexOf(prefix, 0, 'latin1'); i >= 0; i = block.indexOf(prefix, i + 1, 'latin1')) {
      const next = block[i + prefix.length];
      // \s+ after the id (the name may be empty), never more hex digits or the end of the line.
      if (next === 32 || next === 9) return start + i;
    }
    return -1;
  }

  private firstLine(prefix: string, start: number, end: number): string | null {
    const at = this.firstLineAt(prefix, start, end);
    return at < 0 ? null : this.name(at + prefix.length, this.eol(at + 1));
  }

  private parseClasses(): Map<string, string> {
    const map = new Map<string, string>();
    const start = this.findLine('C ');
    if (start < 0) return map;
    let cls = '';
    let sub = '';
    // The class section is the file's last few kilobytes: decoded once, whole.
    for (const line of this.bytes.toString('utf8', start).split('\n')) {
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
    if (this.bytes.toString('latin1', 0, prefix.length) === prefix) return 0;
    const i = this.bytes.indexOf('\n' + prefix, 0, 'latin1');
    return i < 0 ? -1 : i + 1;
  }
}
