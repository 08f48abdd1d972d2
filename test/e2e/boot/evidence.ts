/**
 * Pure readers of what a boot lab guest left on its output share: sysfs driver lines, systemd
 * properties, the kernel's bind log (dyndbg on drivers/base/dd.c) and journal entries.
 */

export interface DeviceState {
  readonly present: boolean;
  /** Bound driver, null when unbound or absent. */
  readonly driver: string | null;
  /** driver_override, null when unset. */
  readonly override: string | null;
}

/** `drivers` lines: ADDRESS present DRIVER OVERRIDE, or ADDRESS absent ("-" for none). */
export function parseDrivers(text: string): Map<string, DeviceState> {
  const out = new Map<string, DeviceState>();
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length === 2 && f[1] === 'absent') out.set(f[0]!, { present: false, driver: null, override: null });
    else if (f.length === 4 && f[1] === 'present') out.set(f[0]!, { present: true, driver: f[2] === '-' ? null : f[2]!, override: f[3] === '-' ? null : f[3]! });
    else if (line.trim() !== '') throw new Error(`drivers: cannot read line ${JSON.stringify(line)}`);
  }
  return out;
}

/** `systemctl show` output: KEY=VALUE lines. */
export function parseShow(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const at = line.indexOf('=');
    if (at > 0) out[line.slice(0, at)] = line.slice(at + 1);
  }
  return out;
}

export interface BindEvent {
  readonly driver: string;
  readonly bdf: string;
  /** Seconds since boot, from the kernel's timestamp. */
  readonly at: number | null;
}

const PCI_ADDR = /^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/;

/**
 * Every driver bind the kernel logged, from driver_bound()'s debug line. Linux 6.1 prints it
 * with pr_debug ("driver: 'e1000e': driver_bound: bound to device '0000:01:00.0'"), newer
 * kernels with dev_dbg (the device's name leads: "e1000e 0000:01:00.0: driver: ... device").
 * Devices other than PCI functions (e.g. a port service "0000:00:02.0:pcie001") are skipped.
 */
export function bindEvents(dmesg: string): BindEvent[] {
  const out: BindEvent[] = [];
  for (const line of dmesg.split('\n')) {
    const m = /(?:(\S+): )?driver: '([^']+)': driver_bound: bound to device(?: '([^']+)')?/.exec(line);
    if (!m) continue;
    const bdf = m[3] ?? m[1];
    if (!bdf || !PCI_ADDR.test(bdf)) continue;
    const ts = /^\[\s*([0-9]+\.[0-9]+)\]/.exec(line);
    out.push({ driver: m[2]!, bdf, at: ts ? Number(ts[1]) : null });
  }
  return out;
}

/** Drivers that took this device during the boot, in order. */
export function driversBound(dmesg: string, bdf: string): string[] {
  return bindEvents(dmesg).filter((e) => e.bdf === bdf).map((e) => e.driver);
}

/** The log's lines after the line holding `begin` and before the next one holding `end`. */
export function logBetween(log: string, begin: string, end: string): string {
  const lines = log.split('\n');
  const from = lines.findIndex((l) => l.includes(begin));
  if (from < 0) throw new Error(`log: no line with ${JSON.stringify(begin)}`);
  const to = lines.findIndex((l, i) => i > from && l.includes(end));
  if (to < 0) throw new Error(`log: no line with ${JSON.stringify(end)} after ${JSON.stringify(begin)}`);
  return lines.slice(from + 1, to).join('\n');
}

export interface JournalEntry {
  readonly [field: string]: unknown;
}

/** `journalctl -o json` output: one object a line (other lines, e.g. "-- No entries --", skipped). */
export function parseJournal(text: string): JournalEntry[] {
  const out: JournalEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    out.push(JSON.parse(line) as JournalEntry);
  }
  return out;
}

/** Lines a unit's own processes wrote (not systemd's messages about the unit). */
export function unitOutput(entries: readonly JournalEntry[], unitPrefix: string): JournalEntry[] {
  return entries.filter((e) => typeof e._SYSTEMD_UNIT === 'string' && e._SYSTEMD_UNIT.startsWith(unitPrefix));
}

/** A journal MESSAGE as text (journald stores non-UTF-8 messages as byte arrays). */
export function message(e: JournalEntry): string {
  const m = e.MESSAGE;
  if (typeof m === 'string') return m;
  if (Array.isArray(m)) return Buffer.from(m as number[]).toString('utf8');
  return '';
}
