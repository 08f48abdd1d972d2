/**
 * Guest side helpers for the scenarios: run vfioctl as a user would (a child
 * process, argument arrays only), read the kernel's truth straight from sysfs
 * (independently of vfioctl's own reader), and ask the hot-reset oracle.
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { topology, type Role, type Topology } from './topologies.js';
import { validateJsonRun } from '../../helpers/schema.js';

export const IN_LAB = process.env.LAB_TOPOLOGY !== undefined && fs.existsSync('/lab-out');
export const REPO = process.env.LAB_REPO ?? process.cwd();
export const ORACLE = process.env.LAB_ORACLE ?? path.join(REPO, 'test/e2e/work/hotreset');
export const NOT_IN_LAB = 'runs only inside the e2e lab VM (npm run test:e2e)';

export function labTopology(): Topology {
  return topology(process.env.LAB_TOPOLOGY ?? '');
}

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

export function run(file: string, args: readonly string[], timeoutMs = 60_000): Promise<Run> {
  return new Promise((resolve) => {
    execFile(file, [...args], { cwd: REPO, timeout: timeoutMs, maxBuffer: 32 << 20, env: { ...process.env, NO_COLOR: '1' } },
      (err, stdout, stderr) => {
        const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1) : 0;
        resolve({ code, stdout, stderr });
      });
  });
}

/** `node bin/vfioctl ARGS…` in the checkout. */
export function vfioctl(...args: string[]): Promise<Run> {
  return run(process.execPath, [path.join(REPO, 'bin', 'vfioctl'), ...args]);
}

/** vfioctl with --json among its arguments: the document, checked against schema/ like every unit test's. */
export async function vfioctlJson(...args: string[]): Promise<{ run: Run; json: any }> {
  const r = await vfioctl(...args);
  validateJsonRun(args, r.code, r.stdout);
  let json: any;
  try {
    json = JSON.parse(r.stdout);
  } catch {
    throw new Error(`vfioctl ${args.join(' ')} (exit ${r.code}) did not print JSON:\n${r.stdout}\n${r.stderr}`);
  }
  return { run: r, json };
}

let helpText: string | undefined;
/** Whether `vfioctl --help` lists a command: scenarios for unwritten commands skip. */
export async function hasCommand(name: string): Promise<boolean> {
  helpText ??= (await vfioctl('--help')).stdout;
  return new RegExp(`^\\s+${name}\\b`, 'm').test(helpText);
}

export function missing(name: string): string {
  return `vfioctl has no '${name}' command yet`;
}

// ---- sysfs truth -------------------------------------------------------------

const SYS = '/sys';
const DEVICES = `${SYS}/bus/pci/devices`;

function attr(p: string): string | null {
  try {
    return fs.readFileSync(p, 'latin1').trim();
  } catch {
    return null;
  }
}

function linkBase(p: string): string | null {
  try {
    return path.basename(fs.readlinkSync(p));
  } catch {
    return null;
  }
}

export interface TruthDevice {
  bdf: string;
  vendor: string;
  device: string;
  classCode: string;
  driver: string | null;
  override: string | null;
  group: number | null;
  vfioDev: boolean;
  bridge: boolean;
}

export function truthDevice(bdf: string): TruthDevice {
  const d = `${DEVICES}/${bdf}`;
  const g = linkBase(`${d}/iommu_group`);
  const ov = attr(`${d}/driver_override`);
  const cls = (attr(`${d}/class`) ?? '0x000000').slice(2);
  return {
    bdf,
    vendor: (attr(`${d}/vendor`) ?? '').slice(2),
    device: (attr(`${d}/device`) ?? '').slice(2),
    classCode: cls,
    driver: linkBase(`${d}/driver`),
    override: ov === null || ov === '(null)' || ov === '' ? null : ov,
    group: g === null ? null : Number(g),
    vfioDev: fs.existsSync(`${d}/vfio-dev`),
    bridge: cls.startsWith('0604') || cls.startsWith('0609'),
  };
}

export function allBdfs(): string[] {
  return fs.readdirSync(DEVICES).sort();
}

/** Driver and override of every function: what "changes nothing" is checked against. */
export function bindingState(): Record<string, string> {
  return Object.fromEntries(allBdfs().map((b) => {
    const d = truthDevice(b);
    return [b, `${d.driver ?? '-'} override=${d.override ?? '-'}`];
  }));
}

/** Drivers that keep a group VFIO-viable (driver_managed_dma), per the rule. */
export function keepsViable(d: TruthDevice): boolean {
  return d.driver === null || d.vfioDev || ['vfio-pci', 'pci-stub', 'pcieport'].includes(d.driver);
}

export interface TruthGroup {
  id: number;
  members: string[];
  viable: boolean;
  blockers: string[];
}

export function truthGroups(): TruthGroup[] {
  const root = `${SYS}/kernel/iommu_groups`;
  return fs.readdirSync(root).map(Number).sort((a, b) => a - b).map((id) => {
    const members = fs.readdirSync(`${root}/${id}/devices`).sort();
    const blockers = members.filter((b) => !keepsViable(truthDevice(b)));
    return { id, members, viable: blockers.length === 0, blockers };
  });
}

/** BDFs of a role's physical functions (VFs, which may share the id, are left out). */
export function findRole(role: Role): string[] {
  return allBdfs().filter((b) => {
    const d = truthDevice(b);
    return d.vendor === role.vendor && d.device === role.device && !fs.existsSync(`${DEVICES}/${b}/physfn`);
  });
}

export function vfsOf(pf: string): string[] {
  return fs.readdirSync(`${DEVICES}/${pf}`).filter((n) => /^virtfn\d+$/.test(n))
    .map((n) => linkBase(`${DEVICES}/${pf}/${n}`)!).sort();
}

export function roleBdf(t: Topology, name: string): string {
  const role = t.roles.find((r) => r.name === name);
  if (!role) throw new Error(`topology ${t.name} has no role ${name}`);
  const bdfs = findRole(role);
  if (bdfs.length !== 1) throw new Error(`role ${name} in ${t.name}: expected one device, found ${bdfs.join(', ') || 'none'}`);
  return bdfs[0]!;
}

/** The lab's own plumbing: never touched by scenarios (9p devices carry the root). */
export function isLabPlumbing(bdf: string): boolean {
  return bdf === '0000:00:10.0' || bdf === '0000:00:11.0';
}

// ---- direct sysfs binding (scenario set-up, independent of vfioctl) -----------

function write(p: string, value: string): void {
  fs.writeFileSync(p, value);
}

/** Bind with the kernel's own interface: override, unbind, drivers_probe (kernel.md §3.5). */
export async function sysfsBind(bdf: string, driver: string): Promise<void> {
  const d = `${DEVICES}/${bdf}`;
  if (linkBase(`${d}/driver`) === driver) return;
  if (driver === 'vfio-pci') await run('modprobe', ['vfio-pci']);
  write(`${d}/driver_override`, driver);
  if (fs.existsSync(`${d}/driver`)) write(`${d}/driver/unbind`, bdf);
  write(`${SYS}/bus/pci/drivers_probe`, bdf);
  const now = linkBase(`${d}/driver`);
  if (now !== driver) throw new Error(`set-up: ${bdf} did not bind to ${driver} (driver ${now})`);
}

/** Give a device back to its host driver: clear override, unbind, reprobe. */
export function sysfsRestore(bdf: string): void {
  const d = `${DEVICES}/${bdf}`;
  write(`${d}/driver_override`, '\n');
  if (fs.existsSync(`${d}/driver`)) write(`${d}/driver/unbind`, bdf);
  write(`${SYS}/bus/pci/drivers_probe`, bdf);
}

// ---- hot-reset oracle ----------------------------------------------------------

export interface OracleAnswer {
  ok: boolean;
  stage?: string;
  errno?: string;
  devices?: { bdf: string; group: number }[];
  reset?: { ok: boolean; errno?: string };
}

export async function oracle(mode: 'info' | 'reset', bdf: string, groups: readonly number[]): Promise<OracleAnswer> {
  const r = await run(ORACLE, [mode, bdf, ...groups.map(String)]);
  const line = r.stdout.trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(line) as OracleAnswer;
  } catch {
    throw new Error(`oracle ${mode} ${bdf} ${groups.join(' ')} printed no JSON (exit ${r.code}): ${r.stdout}${r.stderr}`);
  }
}

/** The lab kernel this guest booted (LAB_KERNEL from the kernel command line). */
export const LAB_KERNEL = process.env.LAB_KERNEL ?? 'debian';
/** The kernel offers device cdevs and iommufd (the lab's cdev kernel). */
export const HAS_CDEV = fs.existsSync('/dev/iommu');

/** What the oracle's cdev mode prints: INFO through a cdev bound to an iommufd context. */
export interface CdevOracleAnswer {
  ok: boolean;
  stage?: string;
  bdf?: string;
  errno?: string;
  flags?: { devId: boolean; devIdOwned: boolean };
  /** devid per device the oracle bound, and which of its two contexts (0, 1) holds it. */
  bound?: Record<string, { devid: number; context: number }>;
  devices?: { bdf: string; devid: number | 'owned' | 'not-owned' }[];
  reset?: { ok: boolean; errno?: string };
}

/**
 * Asks the kernel through the cdev path: `ctx0` (the asked device first) bound to one
 * iommufd context, `ctx1` to a second one.
 */
export async function cdevOracle(mode: 'info' | 'reset', ctx0: readonly string[], ctx1: readonly string[] = []): Promise<CdevOracleAnswer> {
  const args = [`cdev-${mode}`, ...ctx0, ...(ctx1.length ? ['--', ...ctx1] : [])];
  const r = await run(ORACLE, args);
  const line = r.stdout.trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(line) as CdevOracleAnswer;
  } catch {
    throw new Error(`oracle ${args.join(' ')} printed no JSON (exit ${r.code}): ${r.stdout}${r.stderr}`);
  }
}
