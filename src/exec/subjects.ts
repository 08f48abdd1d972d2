import type { Bdf } from '../model/address.js';
import { isBdf } from '../model/address.js';
import { isDriverName } from '../model/names.js';
import { VfioctlError } from '../errors.js';
import { ExitCode } from '../exit-codes.js';
import type { FsRoot } from '../sysfs/fsroot.js';
import { PCI_DRIVERS_PROBE, devicePath, driverPath } from '../sysfs/paths.js';
import { overrideValue } from '../sysfs/scan.js';
import type { Step, SubjectKind, SubjectState } from './steps.js';

/**
 * The edge that touches the system for the executor: read a subject's state, perform one step
 * and read it back, put a subject back to a recorded state. Every write is verified by a read:
 * the kernel accepts some writes that do nothing (drivers_probe succeeds when nothing binds).
 */

/** A step whose write failed or whose read-back disagrees; the exit code it deserves. */
export class StepFailure extends Error {
  constructor(message: string, readonly exitCode: number = ExitCode.FAILURE) {
    super(message);
    this.name = 'StepFailure';
  }
}

/** Largest file the executor will record for undo (generated config is a few KiB). */
const MAX_FILE_UNDO = 1 << 20;

export function failureOf(err: unknown): StepFailure {
  if (err instanceof StepFailure) return err;
  if (err instanceof VfioctlError) return new StepFailure(`${err.what}: ${err.why}`, err.code === ExitCode.PERMISSION ? ExitCode.PERMISSION : ExitCode.FAILURE);
  const code = typeof err === 'object' && err !== null && 'code' in err ? String(err.code) : '';
  const text = err instanceof Error ? err.message : String(err);
  return new StepFailure(code === 'EACCES' || code === 'EPERM' ? `${text} (run as root)` : text, code === 'EACCES' || code === 'EPERM' ? ExitCode.PERMISSION : ExitCode.FAILURE);
}

// --- devices --------------------------------------------------------------------------------

export function driverOf(fs: FsRoot, bdf: Bdf): string | null {
  const name = fs.linkName(`${devicePath(bdf)}/driver`);
  return name === undefined ? null : name;
}

export function overrideOf(fs: FsRoot, bdf: Bdf): string | null {
  return overrideValue(fs.read(`${devicePath(bdf)}/driver_override`));
}

/** A driver name read from sysfs, checked before it is joined into a path. */
function checkedDriver(name: string, bdf: Bdf): string {
  if (!isDriverName(name)) throw new StepFailure(`${bdf} is bound to a driver whose name "${String(name).slice(0, 40)}" is not a driver name; refusing to use it as a path`);
  return name;
}

function setOverride(fs: FsRoot, bdf: Bdf, driver: string | null): void {
  fs.write(`${devicePath(bdf)}/driver_override`, `${driver ?? ''}\n`);
  const now = overrideOf(fs, bdf);
  if (now !== driver) throw new StepFailure(`driver_override of ${bdf} reads "${now ?? '(null)'}" after writing "${driver ?? ''}"`);
}

function unbindCurrent(fs: FsRoot, bdf: Bdf): void {
  const cur = driverOf(fs, bdf);
  if (cur === null) return;
  fs.write(`${driverPath(checkedDriver(cur, bdf))}/unbind`, bdf);
  const now = driverOf(fs, bdf);
  if (now !== null) throw new StepFailure(`${bdf} is still bound to ${now} after writing to ${driverPath(cur)}/unbind`);
}

function probe(fs: FsRoot, bdf: Bdf, want: string | null): void {
  fs.write(PCI_DRIVERS_PROBE, bdf);
  const now = driverOf(fs, bdf);
  if (want !== null && now !== want) {
    throw new StepFailure(`${want} did not take ${bdf} (${now ? `bound to ${now}` : 'left without a driver'} after drivers_probe); the kernel log may say "probe with driver ${want} failed"`);
  }
}

function bindTo(fs: FsRoot, bdf: Bdf, driver: string): void {
  fs.write(`${driverPath(checkedDriver(driver, bdf))}/bind`, bdf);
  const now = driverOf(fs, bdf);
  if (now !== driver) throw new StepFailure(`${bdf} is ${now ? `bound to ${now}` : 'without a driver'} after writing to ${driverPath(driver)}/bind`);
}

/** A restore tries every part even when one fails, and collects what went wrong. */
function attempts(): { problems: string[]; attempt: (f: () => void) => void } {
  const problems: string[] = [];
  return {
    problems,
    attempt: (f) => {
      try {
        f();
      } catch (err) {
        problems.push(failureOf(err).message);
      }
    },
  };
}

/**
 * Put a device back: override as it was, off whatever it is on now, then probe (or bind
 * explicitly when probing picks another driver). Each part is tried even when one fails.
 * Returns null when the device reads as recorded, else what it is left as.
 */
function restoreDevice(fs: FsRoot, s: { bdf: Bdf; driver: string | null; override: string | null }): string | null {
  if (!fs.lexists(devicePath(s.bdf))) {
    // A VF created in this run and removed again by its PF's restore: nothing is left of it.
    return s.driver === null && s.override === null ? null : `${s.bdf} no longer exists`;
  }
  const { problems, attempt } = attempts();
  if (overrideOf(fs, s.bdf) !== s.override) attempt(() => setOverride(fs, s.bdf, s.override));
  const cur = driverOf(fs, s.bdf);
  if (cur !== null && cur !== s.driver) attempt(() => unbindCurrent(fs, s.bdf));
  if (s.driver !== null && driverOf(fs, s.bdf) === null) {
    attempt(() => probe(fs, s.bdf, null));
    if (driverOf(fs, s.bdf) === null && isDriverName(s.driver) && fs.isDir(driverPath(s.driver))) attempt(() => bindTo(fs, s.bdf, s.driver!));
  }
  const driver = driverOf(fs, s.bdf);
  const override = overrideOf(fs, s.bdf);
  if (driver === s.driver && override === s.override) return null;
  return `on ${driver ?? 'no driver'} with driver_override ${override ?? '(null)'} instead of ${s.driver ?? 'no driver'} with ${s.override ?? '(null)'}${problems.length ? ` (${problems.join('; ')})` : ''}`;
}

function deviceFix(s: { bdf: Bdf; driver: string | null; override: string | null }): string {
  const parts = [`echo '${s.override ?? ''}' > /sys/bus/pci/devices/${s.bdf}/driver_override`];
  if (s.driver !== null) parts.push(`echo ${s.bdf} > /sys/bus/pci/drivers/${s.driver}/bind (after unbinding it from its current driver)`);
  else parts.push(`unbind it: echo ${s.bdf} > /sys/bus/pci/devices/${s.bdf}/driver/unbind`);
  return parts.join('; ');
}

// --- SR-IOV ---------------------------------------------------------------------------------

const numvfsPath = (pf: Bdf) => `${devicePath(pf)}/sriov_numvfs`;
const autoprobePath = (pf: Bdf) => `${devicePath(pf)}/sriov_drivers_autoprobe`;

function readNumVfs(fs: FsRoot, pf: Bdf): number | null {
  const t = fs.read(numvfsPath(pf))?.trim() ?? '';
  return /^\d{1,6}$/.test(t) ? Number(t) : null;
}

function readAutoprobe(fs: FsRoot, pf: Bdf): 0 | 1 | null {
  const t = fs.read(autoprobePath(pf))?.trim();
  return t === '0' ? 0 : t === '1' ? 1 : null;
}

/** The PF's VFs from virtfn0..n-1 (only links that name a BDF). */
function vfsOf(fs: FsRoot, pf: Bdf, n: number): Bdf[] {
  const out: Bdf[] = [];
  for (let i = 0; i < n; i++) {
    const b = fs.linkName(`${devicePath(pf)}/virtfn${i}`);
    if (b !== undefined && isBdf(b)) out.push(b);
  }
  return out;
}

function writeNumVfs(fs: FsRoot, pf: Bdf, value: number): void {
  fs.write(numvfsPath(pf), String(value));
  const now = readNumVfs(fs, pf);
  const links = vfsOf(fs, pf, value).length;
  if (now !== value || links !== value || fs.lexists(`${devicePath(pf)}/virtfn${value}`)) {
    throw new StepFailure(`sriov_numvfs of ${pf} reads ${now ?? '?'} with ${links} VF links after writing ${value}`);
  }
}

function writeAutoprobe(fs: FsRoot, pf: Bdf, value: 0 | 1): void {
  fs.write(autoprobePath(pf), String(value));
  const now = readAutoprobe(fs, pf);
  if (now !== value) throw new StepFailure(`sriov_drivers_autoprobe of ${pf} reads ${now ?? '?'} after writing ${value}`);
}

/**
 * Put a PF back: VF count through 0 (non-zero to non-zero is EBUSY), autoprobe as it was
 * before the VFs are recreated (so they probe as they did), then each VF's driver and override.
 */
function restoreSriov(fs: FsRoot, s: Extract<SubjectState, { kind: 'sriov' }>): string | null {
  const { problems, attempt } = attempts();
  const cur = readNumVfs(fs, s.pf);
  if (cur !== s.numvfs && cur !== 0) attempt(() => writeNumVfs(fs, s.pf, 0));
  if (s.autoprobe !== null && readAutoprobe(fs, s.pf) !== s.autoprobe) attempt(() => writeAutoprobe(fs, s.pf, s.autoprobe!));
  if (readNumVfs(fs, s.pf) !== s.numvfs && s.numvfs > 0) attempt(() => writeNumVfs(fs, s.pf, s.numvfs));
  for (const vf of s.vfs) {
    const left = restoreDevice(fs, vf);
    if (left) problems.push(`VF ${vf.bdf} ${left}`);
  }
  const n = readNumVfs(fs, s.pf);
  const ap = readAutoprobe(fs, s.pf);
  if (n === s.numvfs && (s.autoprobe === null || ap === s.autoprobe) && problems.length === 0) return null;
  return `sriov_numvfs ${n ?? '?'} (was ${s.numvfs}), sriov_drivers_autoprobe ${ap ?? '?'} (was ${s.autoprobe ?? '?'})${problems.length ? `: ${problems.join('; ')}` : ''}`;
}

// --- device nodes and files -----------------------------------------------------------------

function readNode(fs: FsRoot, p: string): { uid: number; gid: number; mode: number } {
  const st = fs.stat(p);
  if (!st) throw new StepFailure(`${p} does not exist`, ExitCode.NOT_FOUND);
  return { uid: st.uid, gid: st.gid, mode: st.mode };
}

function setOwner(fs: FsRoot, p: string, o: { uid: number; gid: number; mode: number }): void {
  fs.chown(p, o.uid, o.gid);
  fs.chmod(p, o.mode);
  const now = readNode(fs, p);
  if (now.uid !== o.uid || now.gid !== o.gid || now.mode !== o.mode) {
    throw new StepFailure(`${p} is ${now.uid}:${now.gid} ${now.mode.toString(8)} after setting ${o.uid}:${o.gid} ${o.mode.toString(8)} (a device manager may have reset it)`);
  }
}

function readFileState(fs: FsRoot, p: string): Extract<SubjectState, { kind: 'file' }> {
  const link = fs.readLink(p);
  if (link !== undefined) return { kind: 'file', path: p, content: null, link, mode: null };
  if (!fs.lexists(p)) return { kind: 'file', path: p, content: null, link: null, mode: null };
  const st = fs.stat(p);
  if (!st || st.kind !== 'file') throw new StepFailure(`${p} is not a regular file; move it away first`);
  const content = fs.readText(p);
  if (content === undefined) throw new StepFailure(`cannot read ${p} to keep a copy for undo`);
  if (content.length > MAX_FILE_UNDO) throw new StepFailure(`${p} is larger than ${MAX_FILE_UNDO} bytes; vfioctl will not replace it`);
  return { kind: 'file', path: p, content, link: null, mode: st.mode };
}

function setFile(fs: FsRoot, p: string, want: { content: string | null; link: string | null; mode: number | null }): void {
  if (want.content !== null) {
    fs.writeFileAtomic(p, want.content, want.mode ?? 0o644);
    if (want.mode !== null && fs.stat(p)?.mode !== want.mode) fs.chmod(p, want.mode);
  } else if (want.link !== null) fs.symlink(want.link, p);
  else fs.removeFile(p);
  const now = readFileState(fs, p);
  if (now.content !== want.content || now.link !== want.link || (want.content !== null && want.mode !== null && now.mode !== want.mode)) {
    throw new StepFailure(`${p} does not read back as written`);
  }
}

// --- the executor's interface ---------------------------------------------------------------

/** The state of a step's subject now, recorded before the subject's first change. */
export function capture(fs: FsRoot, kind: SubjectKind, id: string): SubjectState {
  switch (kind) {
    case 'device':
      return { kind, bdf: id, driver: driverOf(fs, id), override: overrideOf(fs, id) };
    case 'sriov': {
      const numvfs = readNumVfs(fs, id);
      if (numvfs === null) throw new StepFailure(`${id} has no readable sriov_numvfs`);
      const vfs = vfsOf(fs, id, numvfs).map((bdf) => ({ bdf, driver: driverOf(fs, bdf), override: overrideOf(fs, bdf) }));
      return { kind, pf: id, numvfs, autoprobe: readAutoprobe(fs, id), vfs };
    }
    case 'node':
      return { kind, path: id, ...readNode(fs, id) };
    case 'file':
      return readFileState(fs, id);
  }
}

/** Perform one step and verify it by reading back; throws StepFailure. */
export function perform(fs: FsRoot, step: Step): void {
  try {
    switch (step.op) {
      case 'override':
        return setOverride(fs, step.bdf, step.driver);
      case 'unbind':
        return unbindCurrent(fs, step.bdf);
      case 'probe':
        return probe(fs, step.bdf, step.want);
      case 'bind':
        return bindTo(fs, step.bdf, step.driver);
      case 'autoprobe':
        return writeAutoprobe(fs, step.pf, step.value);
      case 'numvfs':
        return writeNumVfs(fs, step.pf, step.value);
      case 'owner':
        return setOwner(fs, step.path, step);
      case 'file':
        return setFile(fs, step.path, { content: step.content, link: step.link, mode: step.content === null ? null : step.mode });
    }
  } catch (err) {
    if (err instanceof StepFailure || err instanceof VfioctlError) throw failureOf(err);
    // Only failures of the system are step failures; a programming error stays what it is.
    if (typeof err === 'object' && err !== null && 'code' in err && typeof (err as { code: unknown }).code === 'string' && /^E[A-Z]+$/.test(String((err as { code: unknown }).code))) throw failureOf(err);
    throw err;
  }
}

/**
 * Put a subject back to its recorded state and read it back. Returns null when it reads as
 * recorded, else what is left and the command that fixes it.
 */
export function restore(fs: FsRoot, s: SubjectState): { left: string; fix: string } | null {
  try {
    switch (s.kind) {
      case 'device': {
        const left = restoreDevice(fs, s);
        return left === null ? null : { left, fix: deviceFix(s) };
      }
      case 'sriov': {
        const left = restoreSriov(fs, s);
        return left === null ? null : { left, fix: `echo 0 > /sys/bus/pci/devices/${s.pf}/sriov_numvfs; echo ${s.autoprobe ?? 1} > /sys/bus/pci/devices/${s.pf}/sriov_drivers_autoprobe; echo ${s.numvfs} > /sys/bus/pci/devices/${s.pf}/sriov_numvfs` };
      }
      case 'node': {
        const now = fs.stat(s.path);
        if (now && now.uid === s.uid && now.gid === s.gid && now.mode === s.mode) return null;
        setOwner(fs, s.path, s);
        return null;
      }
      case 'file': {
        const now = readFileState(fs, s.path);
        if (now.content === s.content && now.link === s.link && (s.content === null || now.mode === s.mode)) return null;
        setFile(fs, s.path, s);
        return null;
      }
    }
  } catch (err) {
    const e = failureOf(err);
    const fix = s.kind === 'node'
      ? `chown ${s.uid}:${s.gid} ${s.path} && chmod ${s.mode.toString(8).padStart(4, '0')} ${s.path}`
      : s.kind === 'file'
        ? (s.content === null && s.link === null ? `rm -f ${s.path}` : s.link !== null ? `ln -sfn ${s.link} ${s.path}` : `restore ${s.path} from a backup (its old content is in the journal's copy printed by --json)`)
        : s.kind === 'device' ? deviceFix(s) : `set ${s.pf}'s sriov_numvfs back to ${s.numvfs}`;
    return { left: e.message, fix };
  }
}
