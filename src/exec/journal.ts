import { isBdf } from '../model/address.js';
import { isDriverName } from '../model/names.js';
import { VfioctlError } from '../errors.js';
import { ExitCode } from '../exit-codes.js';
import type { FsRoot } from '../sysfs/fsroot.js';
import type { SubjectState } from './steps.js';

/**
 * The run journal: before a run changes a subject (a device, a PF, a node, a file) it records
 * the subject's state here, so that after SIGKILL or a power cut the next vfioctl to take the
 * lock can put everything back. It lives with the lock and the device records in a directory
 * only root can write. Written atomically (write, fsync, rename) before each new subject.
 */
export const STATE_ROOT = '/run/vfioctl';
export const JOURNAL_PATH = `${STATE_ROOT}/journal.json`;
/** Largest journal read back (a run records at most a few hundred subjects). */
const MAX_JOURNAL = 4 << 20;

export interface Journal {
  readonly pid: number;
  readonly command: string;
  readonly startedAt: string;
  readonly subjects: readonly SubjectState[];
}

/**
 * Make sure the state directory exists, is a real directory (not a symlink), belongs to the
 * user running vfioctl and is writable by nobody else: a lock or journal another user could
 * plant would let them steer vfioctl.
 */
export function ensureStateDir(fs: FsRoot): void {
  const info = fs.lstatInfo(STATE_ROOT);
  if (info === undefined) {
    try {
      fs.mkdirp(STATE_ROOT, 0o700);
    } catch (err) {
      if (err instanceof VfioctlError) throw err; // the root's boundary said no
      throw new VfioctlError(ExitCode.PERMISSION, `cannot create ${STATE_ROOT}`, err instanceof Error ? err.message : String(err), 'run as root');
    }
    return;
  }
  const uid = typeof process.geteuid === 'function' ? process.geteuid() : 0;
  if (info.kind === 'link') throw new VfioctlError(ExitCode.FAILURE, STATE_ROOT, 'is a symbolic link; vfioctl keeps its lock and records only in a real directory', `remove it (rm ${STATE_ROOT}) and run again`, { errorCode: 'unsafe-state-dir' });
  if (info.kind !== 'dir') throw new VfioctlError(ExitCode.FAILURE, STATE_ROOT, 'is not a directory', `remove it (rm ${STATE_ROOT}) and run again`, { errorCode: 'unsafe-state-dir' });
  if (info.uid !== uid) throw new VfioctlError(ExitCode.FAILURE, STATE_ROOT, `belongs to uid ${info.uid}, not to uid ${uid} running vfioctl`, `remove it (rm -r ${STATE_ROOT}) and run again`, { errorCode: 'unsafe-state-dir' });
  if ((info.mode & 0o022) !== 0) throw new VfioctlError(ExitCode.FAILURE, STATE_ROOT, `is writable by others (mode ${info.mode.toString(8).padStart(4, '0')})`, `chmod 0700 ${STATE_ROOT}`, { errorCode: 'unsafe-state-dir' });
}

export function writeJournal(fs: FsRoot, j: Journal): void {
  fs.writeFileAtomic(JOURNAL_PATH, JSON.stringify({ schemaVersion: 1, ...j }) + '\n', 0o600);
}

export function removeJournal(fs: FsRoot): void {
  fs.removeFile(JOURNAL_PATH);
}

/** Paths a journal may name: only what vfioctl itself changes. Anything else is not used. */
const FILE_PREFIXES = ['/etc/udev/rules.d/', '/etc/systemd/system/', '/etc/vfioctl/', '/etc/initramfs-tools/', '/etc/modprobe.d/', '/usr/lib/dracut/modules.d/', '/etc/dracut.conf.d/', `${STATE_ROOT}/devices/`];
const NODE_PREFIXES = ['/dev/vfio/', '/dev/iommu'];
const cleanPath = (p: unknown): p is string => typeof p === 'string' && p.startsWith('/') && p.length < 512 && !p.split('/').some((c) => c === '..' || c === '.') && !/[\0\n]/.test(p);
const isInt = (x: unknown, max = 2 ** 31): x is number => typeof x === 'number' && Number.isInteger(x) && x >= 0 && x < max;
const isDriverOrNull = (x: unknown): x is string | null => x === null || isDriverName(x);
const isStringOrNull = (x: unknown): x is string | null => x === null || typeof x === 'string';

/** A subject read back from a journal, fully type-checked; undefined when anything is off. */
export function checkSubject(x: unknown): SubjectState | undefined {
  if (typeof x !== 'object' || x === null) return undefined;
  const s = x as Record<string, unknown>;
  switch (s.kind) {
    case 'device':
      return typeof s.bdf === 'string' && isBdf(s.bdf) && isDriverOrNull(s.driver) && isDriverOrNull(s.override)
        ? { kind: 'device', bdf: s.bdf, driver: s.driver, override: s.override } : undefined;
    case 'sriov': {
      if (typeof s.pf !== 'string' || !isBdf(s.pf) || !isInt(s.numvfs, 65536) || !(s.autoprobe === 0 || s.autoprobe === 1 || s.autoprobe === null) || !Array.isArray(s.vfs) || s.vfs.length > 65536) return undefined;
      const vfs = s.vfs.map((v) => checkSubject({ ...(v as object), kind: 'device' }));
      if (vfs.some((v) => v === undefined)) return undefined;
      return { kind: 'sriov', pf: s.pf, numvfs: s.numvfs, autoprobe: s.autoprobe, vfs: vfs.map((v) => { const d = v as Extract<SubjectState, { kind: 'device' }>; return { bdf: d.bdf, driver: d.driver, override: d.override }; }) };
    }
    case 'node':
      return cleanPath(s.path) && NODE_PREFIXES.some((p) => (s.path as string).startsWith(p)) && isInt(s.uid) && isInt(s.gid) && isInt(s.mode, 0o10000)
        ? { kind: 'node', path: s.path, uid: s.uid, gid: s.gid, mode: s.mode } : undefined;
    case 'file':
      return cleanPath(s.path) && FILE_PREFIXES.some((p) => (s.path as string).startsWith(p)) && isStringOrNull(s.content) && isStringOrNull(s.link) && (s.mode === null || isInt(s.mode, 0o10000))
        && (s.link === null || (typeof s.link === 'string' && s.link.length < 512 && !/[\0\n]/.test(s.link)))
        ? { kind: 'file', path: s.path, content: s.content, link: s.link, mode: s.mode } : undefined;
    default:
      return undefined;
  }
}

export type JournalRead =
  | { readonly state: 'none' }
  | { readonly state: 'ok'; readonly journal: Journal }
  | { readonly state: 'damaged'; readonly why: string };

/** The journal an interrupted run left, validated; a damaged one is never acted on. */
export function readJournal(fs: FsRoot): JournalRead {
  if (!fs.lexists(JOURNAL_PATH)) return { state: 'none' };
  const info = fs.lstatInfo(JOURNAL_PATH);
  if (!info || info.kind !== 'file') return { state: 'damaged', why: `${JOURNAL_PATH} is not a regular file` };
  if (info.size > MAX_JOURNAL) return { state: 'damaged', why: `${JOURNAL_PATH} is larger than ${MAX_JOURNAL} bytes` };
  const text = fs.readText(JOURNAL_PATH);
  if (text === undefined) return { state: 'damaged', why: `${JOURNAL_PATH} cannot be read` };
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return { state: 'damaged', why: `${JOURNAL_PATH} is not valid JSON` };
  }
  if (typeof doc !== 'object' || doc === null) return { state: 'damaged', why: `${JOURNAL_PATH} is not an object` };
  const d = doc as Record<string, unknown>;
  if (d.schemaVersion !== 1 || !isInt(d.pid) || typeof d.command !== 'string' || typeof d.startedAt !== 'string' || !Array.isArray(d.subjects)) {
    return { state: 'damaged', why: `${JOURNAL_PATH} lacks schemaVersion 1, pid, command, startedAt or subjects` };
  }
  const subjects = d.subjects.map(checkSubject);
  const bad = subjects.findIndex((s) => s === undefined);
  if (bad >= 0) return { state: 'damaged', why: `${JOURNAL_PATH}: subjects[${bad}] is not a valid record` };
  return { state: 'ok', journal: { pid: d.pid, command: d.command.slice(0, 200), startedAt: d.startedAt.slice(0, 64), subjects: subjects as SubjectState[] } };
}
