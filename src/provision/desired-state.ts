import { usageError, type VfioctlError } from '../errors.js';
import { driverNameProblem, quoteShort } from '../model/names.js';
import { JsonSyntaxError, parseJsonWithPositions, type JsonNode } from './json-pos.js';

/**
 * The desired-state file of `vfioctl apply`:
 *   {"schemaVersion":1,"devices":[{"match":"0000:01:00.0","driver":"vfio-pci"}, …]}
 * Pure: text in, validated entries (with their line) out; any fault names the line and field.
 */
export interface DesiredDevice {
  /** BDF (full or short), VENDOR:DEVICE, group:N, or an interface / block device name. */
  readonly match: string;
  /** `auto`, `vfio-pci`, a variant driver name, or `host` (give back to the kernel's choice). */
  readonly driver: string;
  /** Line of the entry in the file. */
  readonly line: number;
}

export interface DesiredState {
  readonly schemaVersion: 1;
  readonly devices: readonly DesiredDevice[];
}

export const DESIRED_SCHEMA_VERSION = 1;
/** What a selector may contain: also keeps generated udev rules and units free of quoting. */
export const MATCH_SYNTAX = /^[A-Za-z0-9_.:@-]{1,64}$/;
/**
 * Kernel driver names as they appear in sysfs and modules.alias: the grammar of
 * src/model/names.ts (isDriverName) as one regular expression, for the udev rule writer.
 * The file's `driver` field is checked with isDriverName itself (`auto` and `host` pass it).
 */
export const DRIVER_SYNTAX = /^(?!\.\.?$)[A-Za-z0-9_+.-]{1,64}$/;

/** A key as written when it is a plain word, else a short quoted prefix of it. */
const fieldName = (key: string) => (/^[A-Za-z0-9_$-]{1,40}$/.test(key) ? key : quoteShort(key));

function matchProblem(v: string): string | null {
  if (v.length === 0) return 'is empty';
  if (v.length > 64) return 'is longer than 64 characters';
  return MATCH_SYNTAX.test(v) ? null : 'may hold only letters, digits, "_", ".", ":", "@" and "-"';
}

const kindName = (n: JsonNode) => (n.kind === 'null' ? 'null' : n.kind === 'array' ? 'an array' : n.kind === 'object' ? 'an object' : `a ${n.kind}`);

function fault(source: string, line: number, field: string, why: string): VfioctlError {
  return usageError(`${source}:${line}`, `${field}: ${why}`, 'expected {"schemaVersion":1,"devices":[{"match":"0000:01:00.0","driver":"vfio-pci"}]}; nothing was changed');
}

/** Parse and validate a desired-state document. Throws a usage error (exit 2) naming line and field. */
export function parseDesiredState(text: string, source = 'desired state'): DesiredState {
  let root: JsonNode;
  try {
    root = parseJsonWithPositions(text);
  } catch (err) {
    if (err instanceof JsonSyntaxError) throw fault(source, err.line, `column ${err.col}`, `invalid JSON: ${err.message}`);
    throw err;
  }
  if (root.kind !== 'object') throw fault(source, root.line, '(top level)', `expected an object, found ${kindName(root)}`);
  for (const [key, e] of root.entries) {
    if (key !== 'schemaVersion' && key !== 'devices') throw fault(source, e.key.line, fieldName(key), 'unknown field (allowed: schemaVersion, devices)');
  }
  const version = root.entries.get('schemaVersion');
  if (!version) throw fault(source, root.line, 'schemaVersion', 'missing (must be 1)');
  if (version.value.kind !== 'number' || version.value.value !== DESIRED_SCHEMA_VERSION) {
    throw fault(source, version.value.line, 'schemaVersion', `must be 1, found ${version.value.kind === 'number' ? version.value.value : kindName(version.value)}`);
  }
  const list = root.entries.get('devices');
  if (!list) throw fault(source, root.line, 'devices', 'missing (an array of {"match","driver"})');
  if (list.value.kind !== 'array') throw fault(source, list.value.line, 'devices', `expected an array, found ${kindName(list.value)}`);

  const devices: DesiredDevice[] = [];
  const seen = new Map<string, DesiredDevice>();
  list.value.items.forEach((item, idx) => {
    const at = `devices[${idx}]`;
    if (item.kind !== 'object') throw fault(source, item.line, at, `expected an object, found ${kindName(item)}`);
    for (const [key, e] of item.entries) {
      if (key !== 'match' && key !== 'driver') throw fault(source, e.key.line, `${at}.${fieldName(key)}`, 'unknown field (allowed: match, driver)');
    }
    const field = (name: 'match' | 'driver', problem: (v: string) => string | null, what: string): string => {
      const e = item.entries.get(name);
      if (!e) throw fault(source, item.line, `${at}.${name}`, 'missing');
      if (e.value.kind !== 'string') throw fault(source, e.value.line, `${at}.${name}`, `expected a string, found ${kindName(e.value)}`);
      const why = problem(e.value.value);
      if (why !== null) throw fault(source, e.value.line, `${at}.${name}`, `${quoteShort(e.value.value)} is not ${what}: it ${why}`);
      return e.value.value;
    };
    const match = field('match', matchProblem, 'a device selector (PCI address, VENDOR:DEVICE, group:N, interface or block device)');
    const driver = field('driver', driverNameProblem, 'a driver name (auto, vfio-pci, a variant, or host)');
    const key = match.toLowerCase();
    const prev = seen.get(key);
    if (prev) throw fault(source, item.line, `${at}.match`, `"${match}" is already listed on line ${prev.line}`);
    const dev = { match, driver, line: item.line };
    seen.set(key, dev);
    devices.push(dev);
  });
  return { schemaVersion: 1, devices };
}

/** The canonical text of a desired state (what --export prints and persist installs). */
export function formatDesiredState(devices: readonly { match: string; driver: string }[]): string {
  return JSON.stringify({ schemaVersion: DESIRED_SCHEMA_VERSION, devices: devices.map((d) => ({ match: d.match, driver: d.driver })) }, null, 2) + '\n';
}
