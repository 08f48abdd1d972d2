import * as fs from 'node:fs';
import * as path from 'node:path';
import { VfioctlError, errnoMeaning, errnoOf, exitCodeForErrno } from '../errors.js';
import { ExitCode } from '../exit-codes.js';

/**
 * Every file vfioctl reads or writes goes through one FsRoot, so a test (or a snapshot
 * from another host) is just another directory. Paths given to it are absolute host paths
 * ("/sys/bus/pci/devices"); they resolve under `root`.
 *
 * Reads are synchronous on purpose: sysfs attributes are tiny and a scan of thousands of
 * functions is dominated by per-call overhead, which the async API multiplies.
 */
/** One page: a sysfs attribute never returns more per read(2). */
const READ_BUFFER = Buffer.allocUnsafe(4096);

// The calls of the scan's hot loop, taken once: in the CommonJS bundle `fs.x` is a getter
// on esbuild's module wrapper, called on every use.
const { openSync, readSync, closeSync, readlinkSync, lstatSync, readdirSync } = fs;
const { O_RDONLY } = fs.constants;
const basename = path.posix.basename;

/** Where a link at in-root path `p` whose raw target is `target` points, resolved lexically. */
export function resolveLinkTarget(p: string, target: string): string {
  return target.startsWith('/') ? path.posix.normalize(target) : path.posix.resolve(path.posix.dirname(p), target);
}

export class FsRoot {
  readonly root: string;
  /** Ordered log of writes, for --verbose and for tests. */
  readonly writes: { path: string; value: string }[] = [];
  /** Called before each sysfs write (--verbose echoes it). */
  onWrite?: (path: string, value: string) => void;

  constructor(root = '/') {
    this.root = path.resolve(root);
  }

  /** Host path of an absolute in-root path. */
  abs(p: string): string {
    return this.root === '/' ? p : this.root + p;
  }

  /** In-root path of a host path, or undefined when it lies outside the root. */
  rel(hostPath: string): string | undefined {
    if (this.root === '/') return hostPath;
    if (hostPath === this.root) return '/';
    return hostPath.startsWith(this.root + '/') ? hostPath.slice(this.root.length) : undefined;
  }

  /** Attribute text without its trailing newline; undefined when missing or unreadable. */
  read(p: string): string | undefined {
    // open/read/close into one shared buffer: readFileSync adds an fstat and option
    // handling per call, which doubles the cost of a 4,096-function scan.
    let fd: number | undefined;
    try {
      fd = openSync(this.abs(p), O_RDONLY);
      let n = readSync(fd, READ_BUFFER, 0, READ_BUFFER.length, -1);
      let text = READ_BUFFER.toString('latin1', 0, n);
      // A sysfs attribute comes whole from its first read (one show() call, at most a
      // page), so a short read there is the end: saves one read(2) per attribute.
      // Elsewhere (/proc seq files) read on until EOF.
      if (n < READ_BUFFER.length && p.startsWith('/sys/')) return text.endsWith('\n') ? text.slice(0, -1) : text;
      while (n > 0) {
        n = readSync(fd, READ_BUFFER, 0, READ_BUFFER.length, -1);
        text += READ_BUFFER.toString('latin1', 0, n);
      }
      return text.endsWith('\n') ? text.slice(0, -1) : text;
    } catch {
      return undefined;
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
  }

  /** Whole file (for large files such as modules.alias or pci.ids); undefined when missing. */
  readText(p: string): string | undefined {
    try {
      return fs.readFileSync(this.abs(p), 'utf8');
    } catch {
      return undefined;
    }
  }

  /** Raw link target; undefined when not a link. Works for dangling links too. */
  readLink(p: string): string | undefined {
    try {
      return readlinkSync(this.abs(p));
    } catch {
      return undefined;
    }
  }

  /** Basename of a link's target: the driver name, the group number, the PF's BDF. */
  linkName(p: string): string | undefined {
    const target = this.readLink(p);
    return target === undefined ? undefined : basename(target);
  }

  /**
   * Where a link points, as an in-root path, resolved lexically (sysfs links are relative
   * and never chain through other links for the entries vfioctl follows).
   */
  linkTarget(p: string): string | undefined {
    const target = this.readLink(p);
    return target === undefined ? undefined : resolveLinkTarget(p, target);
  }

  /** Fully resolved in-root path (follows every link); undefined when missing. */
  realpath(p: string): string | undefined {
    try {
      return this.rel(fs.realpathSync(this.abs(p)));
    } catch {
      return undefined;
    }
  }

  /** Directory entries, sorted; [] when missing. */
  list(p: string): string[] {
    try {
      return readdirSync(this.abs(p)).sort();
    } catch {
      return [];
    }
  }

  exists(p: string): boolean {
    return fs.existsSync(this.abs(p));
  }

  /** True when the path itself (not its target) exists, links included. */
  lexists(p: string): boolean {
    try {
      // No exception for the common miss: building one costs more than the syscall.
      return lstatSync(this.abs(p), { throwIfNoEntry: false }) !== undefined;
    } catch {
      return false;
    }
  }

  isDir(p: string): boolean {
    try {
      return fs.statSync(this.abs(p)).isDirectory();
    } catch {
      return false;
    }
  }

  /**
   * One write(2) of `value` to an existing attribute, the way `echo value > file` does.
   * Never creates files: a missing attribute is an error, as it is in sysfs.
   * Kernel errors become a VfioctlError naming the file and the errno.
   */
  write(p: string, value: string): void {
    this.writes.push({ path: p, value });
    this.onWrite?.(p, value);
    let fd: number | undefined;
    try {
      fd = fs.openSync(this.abs(p), fs.constants.O_WRONLY | fs.constants.O_TRUNC);
      fs.writeSync(fd, value);
    } catch (err) {
      const code = errnoOf(err);
      throw new VfioctlError(exitCodeForErrno(code), `cannot write "${value.trim()}" to ${p}`, errnoMeaning(code),
        code === 'EACCES' || code === 'EPERM' ? 'run as root (sysfs writes need CAP_SYS_ADMIN)' : undefined, { cause: err });
    } finally {
      if (fd !== undefined) fs.closeSync(fd);
    }
  }

  /** Create or replace a regular file (state under /run, generated config under /etc) atomically. */
  writeFileAtomic(p: string, content: string, mode = 0o644): void {
    const target = this.abs(p);
    fs.mkdirSync(path.dirname(target), { recursive: true });
    const tmp = `${target}.tmp-${process.pid}`;
    fs.writeFileSync(tmp, content, { mode });
    fs.renameSync(tmp, target);
  }

  /**
   * Create a regular file only if it does not exist (O_CREAT|O_EXCL), for lock files.
   * Returns false when it already exists; other errors throw.
   */
  createExclusive(p: string, content: string, mode = 0o644): boolean {
    const target = this.abs(p);
    fs.mkdirSync(path.dirname(target), { recursive: true });
    let fd: number;
    try {
      fd = fs.openSync(target, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, mode);
    } catch (err) {
      if (errnoOf(err) === 'EEXIST') return false;
      throw err;
    }
    try {
      fs.writeSync(fd, content);
    } finally {
      fs.closeSync(fd);
    }
    return true;
  }

  /** Remove a regular file; missing is fine. */
  removeFile(p: string): void {
    fs.rmSync(this.abs(p), { force: true });
  }

  mkdirp(p: string, mode?: number): void {
    fs.mkdirSync(this.abs(p), { recursive: true, ...(mode === undefined ? {} : { mode }) });
  }

  /** The path itself (links not followed): kind, owner, permission bits, size; undefined when missing. */
  lstatInfo(p: string): { kind: 'file' | 'dir' | 'link' | 'other'; uid: number; mode: number; size: number } | undefined {
    try {
      const st = fs.lstatSync(this.abs(p));
      const kind = st.isSymbolicLink() ? 'link' : st.isFile() ? 'file' : st.isDirectory() ? 'dir' : 'other';
      return { kind, uid: st.uid, mode: st.mode & 0o7777, size: st.size };
    } catch {
      return undefined;
    }
  }

  /** Create or replace a symbolic link at `p` pointing to `target` (systemd .wants links). */
  symlink(target: string, p: string): void {
    this.fileOp(p, `symlink -> ${target}`, () => {
      fs.mkdirSync(path.dirname(this.abs(p)), { recursive: true });
      fs.rmSync(this.abs(p), { force: true });
      fs.symlinkSync(target, this.abs(p));
    });
  }

  /** Owner, permission bits and kind of a path (follows links); undefined when missing. */
  stat(p: string): FileStat | undefined {
    try {
      const st = fs.statSync(this.abs(p));
      const kind = st.isFile() ? 'file' : st.isDirectory() ? 'dir' : st.isCharacterDevice() ? 'char' : st.isBlockDevice() ? 'block' : 'other';
      return { mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, kind };
    } catch {
      return undefined;
    }
  }

  /** chown(2) on an existing path (device nodes under /dev); logged like a write. */
  chown(p: string, uid: number, gid: number): void {
    this.fileOp(p, `chown ${uid}:${gid}`, () => fs.chownSync(this.abs(p), uid, gid));
  }

  /** chmod(2) on an existing path; logged like a write. */
  chmod(p: string, mode: number): void {
    this.fileOp(p, `chmod ${mode.toString(8).padStart(4, '0')}`, () => fs.chmodSync(this.abs(p), mode));
  }

  private fileOp(p: string, what: string, op: () => void): void {
    this.writes.push({ path: p, value: what });
    this.onWrite?.(p, what);
    try {
      op();
    } catch (err) {
      const code = errnoOf(err);
      throw new VfioctlError(code === 'ENOENT' ? ExitCode.NOT_FOUND : exitCodeForErrno(code), `cannot ${what} ${p}`, errnoMeaning(code),
        code === 'EACCES' || code === 'EPERM' ? 'run as root' : undefined, { cause: err });
    }
  }
}

/** Owner, mode and kind of a path (follows links), for device-node permission checks. */
export interface FileStat {
  /** Permission bits only (0o7777). */
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly kind: 'file' | 'dir' | 'char' | 'block' | 'other';
}
