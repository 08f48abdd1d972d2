// Named imports: a namespace import of a builtin becomes, in the CommonJS bundle, a copy of
// the module with a getter per export, made at start-up (node:fs has 104 exports).
import { chmodSync, chownSync, closeSync, constants, existsSync, fstatSync, fsyncSync, lstatSync, mkdirSync, openSync, readdirSync, readlinkSync, readSync, realpathSync, renameSync, rmSync, statSync, symlinkSync, unlinkSync, writeFileSync, writeSync, type Stats } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { posix, resolve as resolvePath } from 'node:path';
import { VfioctlError, errnoMeaning, errnoOf, exitCodeForErrno } from '../errors.js';
import { ExitCode } from '../exit-codes.js';
import { quoteShort } from '../model/names.js';
import { nodeFileCalls, type FileCalls } from './file-calls.js';

// Every file vfioctl reads or writes goes through one FsRoot, so a test (or a snapshot
// from another host) is just another directory. Paths given to it are absolute in-root
// paths ("/sys/bus/pci/devices"); they resolve under `root`. Reads are synchronous on
// purpose: sysfs attributes are tiny and a scan of thousands of functions is dominated by
// per-call overhead, which the async API multiplies.

/** One page: a sysfs attribute never returns more per read(2). */
const READ_BUFFER = Buffer.allocUnsafe(4096);

/** Most `read` returns (an attribute is at most a page; /proc files a little more). Larger reads as unreadable. */
export const READ_MAX_BYTES = 1 << 20;
/** Most `readText` returns by default (modules.alias, pci.ids are a few MiB). Larger reads as unreadable. */
export const READ_TEXT_MAX_BYTES = 64 << 20;
/** Lookups in one directory answered by lstat before it is listed instead (kindOf). */
const LIST_AFTER = 8;
/** Symbolic links followed while resolving one path (the kernel's own limit is 40). */
const MAX_LINK_HOPS = 40;

const { O_RDONLY, O_NONBLOCK, O_NOFOLLOW } = constants;
const { ELOOP } = osConstants.errno;
const basename = posix.basename;

/** Where a link at in-root path `p` whose raw target is `target` points, resolved lexically. */
export function resolveLinkTarget(p: string, target: string): string {
  return target.startsWith('/') ? posix.normalize(target) : posix.resolve(posix.dirname(p), target);
}

/** Where the system's own files live on the real root: a symlink there owned by a user is not followed by a write. */
const GUARDED_ON_SLASH = /^\/(?:etc|run|dev)(?:\/|$)/;

/** The error a write gets when its path would leave the root (or take a user's symlink on the real root). */
function boundaryError(what: string, p: string, why: string, hint?: string): VfioctlError {
  return new VfioctlError(ExitCode.REFUSED, `cannot ${what} ${p}`, why, hint);
}

/**
 * Every file vfioctl reads or writes goes through one FsRoot. `--root` is a boundary:
 *
 * - Reads under a root other than `/` resolve each path's directory once (component by
 *   component, memoised per directory; symlinks followed only while they stay inside the
 *   root) and open the last component with O_NOFOLLOW, so sysfs's relative links inside the
 *   tree work and nothing outside it is read. A link leading out reads as missing.
 * - Writes check every component afresh with lstat (writes are rare): one that would leave
 *   the root is refused (exit 4). On the real root `/`, a write below /etc, /run or /dev
 *   refuses to follow a symbolic link that a user other than root owns.
 * - Reads never block and are bounded: O_NONBLOCK (a FIFO in place of an attribute reads as
 *   empty/unreadable instead of hanging), only regular files, at most READ_MAX_BYTES
 *   (READ_TEXT_MAX_BYTES for readText).
 */
export class FsRoot {
  readonly root: string;
  /** Ordered log of writes, for --verbose and for tests. */
  readonly writes: { path: string; value: string }[] = [];
  /** Called before each sysfs write (--verbose echoes it). */
  onWrite?: (path: string, value: string) => void;
  /**
   * The calls `read` and `readLink` make: Node's, or libc's for a long scan (see
   * file-calls.ts). The boundary is the same either way: it is decided before the call.
   */
  fileCalls: FileCalls = nodeFileCalls;

  /** The root with its own symlinks resolved (what contained paths start with). */
  private realRootCache: string | undefined;
  /** In-root path → host path with every symlink resolved inside the root; null: leads outside. */
  private readonly resolved = new Map<string, string | null>();
  /** Real directory → kinds of its entries (see kindOf), and directories looked into once. */
  private readonly kinds = new Map<string, Map<string, 'link' | 'dir' | 'other'>>();
  private readonly looked = new Map<string, number>();
  /** writes.length when `resolved` was last valid (every write may change the tree). */
  private resolvedEpoch = 0;

  constructor(root = '/') {
    this.root = resolvePath(root);
  }

  /** The root's real path; `/` also when --root names a link to `/`. */
  get realRoot(): string {
    if (this.realRootCache === undefined) {
      try {
        this.realRootCache = realpathSync.native(this.root);
      } catch {
        this.realRootCache = this.root;
      }
    }
    return this.realRootCache;
  }

  /** Whether paths need the boundary checks (any root that is not the real `/`). */
  get confined(): boolean {
    return (this.confinedCache ??= this.root !== '/' && this.realRoot !== '/');
  }
  private confinedCache: boolean | undefined;

  /** Host path of an absolute in-root path (lexical: no boundary check). */
  abs(p: string): string {
    return this.root === '/' ? p : this.root + p;
  }

  /** In-root path of a host path, or undefined when it lies outside the root. */
  rel(hostPath: string): string | undefined {
    if (this.root === '/') return hostPath;
    for (const r of this.realRoot === this.root ? [this.root] : [this.root, this.realRoot]) {
      if (r === '/') return hostPath;
      if (hostPath === r) return '/';
      if (hostPath.startsWith(r + '/')) return hostPath.slice(r.length);
    }
    return undefined;
  }

  // --- the boundary ---

  /**
   * Host path of in-root path `p` with every symlink on the way resolved inside the root
   * (the last component too); null when a link leads outside the root, or loops. Missing
   * components are kept as they are (opening them fails as it should). Memoised for
   * directories and links; the memo is dropped on every write.
   */
  private real(p: string): string | null {
    if (this.resolvedEpoch !== this.writes.length) this.forget();
    return this.resolve(p, 0);
  }

  /** Drop what resolution learned: the tree may have changed. */
  private forget(): void {
    this.resolved.clear();
    this.kinds.clear();
    this.looked.clear();
    this.resolvedEpoch = this.writes.length;
  }

  private resolve(p: string, hops: number): string | null {
    const realRoot = this.realRoot;
    if (p === '/' || p === '') return realRoot;
    const hit = this.resolved.get(p);
    if (hit !== undefined) return hit;
    const i = p.lastIndexOf('/');
    const parent = this.resolve(i <= 0 ? '/' : p.slice(0, i), hops);
    if (parent === null) return null;
    const name = p.slice(i + 1);
    if (name === '' || name === '.') return parent;
    if (name === '..') return parent === realRoot ? null : parent.slice(0, parent.lastIndexOf('/'));
    const host = parent + '/' + name;
    const kind = this.kindOf(parent, name, host);
    if (kind === undefined) return host; // missing (or ENOTDIR, EACCES: opening it fails the same way): not memoised, it may appear
    if (kind !== 'link') {
      if (kind === 'dir') this.resolved.set(p, host);
      return host;
    }
    let out: string | null = null;
    if (hops < MAX_LINK_HOPS) {
      let target: string | undefined;
      try {
        target = readlinkSync(host);
      } catch {
        target = undefined;
      }
      let via: string | null = null;
      if (target === undefined || target === '') via = null;
      else if (!target.startsWith('/')) via = parent.slice(realRoot.length) + '/' + target;
      else {
        for (const r of [realRoot, this.root]) {
          if (target === r) via = '/';
          else if (target.startsWith(r + '/')) via = target.slice(r.length);
          if (via !== null) break;
        }
      }
      out = via === null ? null : this.resolve(via, hops + 1);
      if (out !== null && via !== null && !this.resolved.has(via)) return out; // target missing or a file: not memoised
    }
    this.resolved.set(p, out);
    return out;
  }

  /**
   * Whether `name` in real directory `dir` is a link, a directory or something else
   * (undefined: missing). The first lookups in a directory are lstats; from the
   * LIST_AFTER-th on, one listing with file types answers for all its entries (the PCI
   * functions below one bridge: a 4,096-function host has ~90 such directories, not 4,096
   * lstats), while a command about one device does not list /sys/bus/pci/devices whole.
   */
  private kindOf(dir: string, name: string, host: string): 'link' | 'dir' | 'other' | undefined {
    const known = this.kinds.get(dir);
    if (known !== undefined) return known.get(name);
    const looked = this.looked.get(dir) ?? 0;
    if (looked >= LIST_AFTER) {
      const entries = new Map<string, 'link' | 'dir' | 'other'>();
      try {
        for (const e of readdirSync(dir, { withFileTypes: true })) entries.set(e.name, e.isSymbolicLink() ? 'link' : e.isDirectory() ? 'dir' : 'other');
      } catch (err) {
        const code = errnoOf(err);
        // A missing directory has no entries (until a write, which forgets this); one that
        // cannot be listed is asked entry by entry.
        if (code !== 'ENOENT' && code !== 'ENOTDIR') return this.lstatKind(host);
      }
      this.kinds.set(dir, entries);
      return entries.get(name);
    }
    this.looked.set(dir, looked + 1);
    return this.lstatKind(host);
  }

  private lstatKind(host: string): 'link' | 'dir' | 'other' | undefined {
    try {
      const st = lstatSync(host, { throwIfNoEntry: false });
      return st === undefined ? undefined : st.isSymbolicLink() ? 'link' : st.isDirectory() ? 'dir' : 'other';
    } catch {
      return undefined;
    }
  }

  /** Host path to open for in-root `p` under a confined root: its directory resolved, the last component as is. */
  private hostOf(p: string): string | null {
    if (this.resolvedEpoch !== this.writes.length) this.forget();
    const i = p.lastIndexOf('/');
    const dir = i <= 0 ? '/' : p.slice(0, i);
    // One map lookup per read (the scan's hot path); a directory is resolved once (and
    // memoised by resolve, unless it is missing).
    let host = this.resolved.get(dir);
    if (host === undefined) host = this.resolve(dir, 0);
    return host === null ? null : host + p.slice(i);
  }

  /**
   * Host path for a write to in-root `p`: every component checked afresh with lstat, links
   * followed only inside the root (the last one only when `followLast`), missing components
   * created as directories when `create` (mkdir -p). On the real root, only paths under
   * /etc, /run and /dev are walked, refusing links owned by users other than root.
   * Throws a VfioctlError (exit 4) when the path would leave the root.
   */
  private writable(p: string, what: string, opts: { followLast: boolean; create?: boolean }, subject = p): string {
    const slash = !this.confined;
    if (slash && !GUARDED_ON_SLASH.test(p)) {
      if (opts.create) mkdirSync(p, { recursive: true });
      return p;
    }
    const realRoot = slash ? '/' : this.realRoot;
    const join = (dir: string, name: string) => (dir === '/' ? `/${name}` : `${dir}/${name}`);
    const pending = p.split('/').filter((c) => c !== '' && c !== '.').reverse();
    let cur = realRoot;
    let hops = 0;
    while (pending.length > 0) {
      const name = pending.pop()!;
      if (name === '..') {
        if (cur === realRoot) throw boundaryError(what, subject, `".." (of the path or of a symbolic link's target) leads outside the root ${this.root}`, 'the root is a boundary: fix the link in the tree (this was not written)');
        cur = cur.slice(0, cur.lastIndexOf('/')) || '/';
        continue;
      }
      const host = join(cur, name);
      const last = pending.length === 0;
      let st: Stats | undefined;
      try {
        st = lstatSync(host, { throwIfNoEntry: false });
      } catch {
        st = undefined;
      }
      if (st === undefined) {
        if (!opts.create) return [host, ...pending.reverse()].join('/');
        mkdirSync(host);
        cur = host;
        continue;
      }
      if (!st.isSymbolicLink() || (last && !opts.followLast)) {
        cur = host;
        continue;
      }
      if (slash && st.uid !== 0) {
        throw boundaryError(what, subject, `${host} is a symbolic link owned by uid ${st.uid}, not root; not following it`, 'remove the link or make it root\'s (this was not written)');
      }
      if (++hops > MAX_LINK_HOPS) throw boundaryError(what, subject, 'too many levels of symbolic links', 'fix the links in the tree (this was not written)');
      const target = readlinkSync(host);
      if (target.startsWith('/')) {
        let inRoot: string | undefined;
        for (const r of slash ? ['/'] : [realRoot, this.root]) {
          if (r === '/') inRoot = target;
          else if (target === r) inRoot = '/';
          else if (target.startsWith(r + '/')) inRoot = target.slice(r.length);
          if (inRoot !== undefined) break;
        }
        if (inRoot === undefined) {
          throw boundaryError(what, subject, `${this.rel(host) ?? host} is a symbolic link to ${JSON.stringify(target)}, outside the root ${this.root}`, 'the root is a boundary: fix the link in the tree (this was not written)');
        }
        cur = realRoot;
        pending.push(...inRoot.split('/').filter((c) => c !== '' && c !== '.').reverse());
      } else {
        pending.push(...target.split('/').filter((c) => c !== '' && c !== '.').reverse());
      }
    }
    return cur;
  }

  // --- reads ---

  /** Attribute text without its trailing newline; undefined when missing, unreadable, not a regular file or too large. */
  read(p: string): string | undefined {
    const calls = this.fileCalls;
    let host: string | null = p;
    let flags = O_RDONLY | O_NONBLOCK;
    if (this.confined) {
      host = this.hostOf(p);
      if (host === null) return undefined;
      flags |= O_NOFOLLOW;
    }
    // open/read/close into one shared buffer: readFileSync adds an fstat and option
    // handling per call, which doubles the cost of a 4,096-function scan.
    let fd = calls.open(host, flags);
    if (fd === -ELOOP && this.confined) {
      // The last component is a link (not a sysfs attribute): follow it only inside the root.
      host = this.real(p);
      if (host === null) return undefined;
      fd = calls.open(host, flags);
    }
    if (fd < 0) return undefined;
    try {
      let n = calls.read(fd, READ_BUFFER);
      if (n < 0) return undefined;
      let text = READ_BUFFER.toString('latin1', 0, n);
      // A sysfs attribute comes whole from its first read (one show() call, at most a
      // page), so a short read there is the end: saves one read(2) per attribute.
      // Elsewhere (/proc seq files) read on until EOF. Only a regular file is read: an
      // empty or full first read, or a path outside /sys, is checked with fstat (a FIFO
      // reads as empty, a character device as endless).
      const sysfs = p.startsWith('/sys/');
      if (n > 0 && n < READ_BUFFER.length && sysfs) return text.endsWith('\n') ? text.slice(0, -1) : text;
      if (!fstatSync(fd).isFile()) return undefined;
      let total = n;
      while (n > 0 && !(sysfs && n < READ_BUFFER.length)) {
        n = calls.read(fd, READ_BUFFER);
        if (n < 0) return undefined;
        total += n;
        if (total > READ_MAX_BYTES) return undefined;
        text += READ_BUFFER.toString('latin1', 0, n);
      }
      return text.endsWith('\n') ? text.slice(0, -1) : text;
    } catch {
      return undefined;
    } finally {
      calls.close(fd);
    }
  }

  /**
   * Whole file (for large files such as modules.alias or pci.ids); undefined when missing,
   * not a regular file, or larger than `maxBytes` (default READ_TEXT_MAX_BYTES).
   */
  readText(p: string, maxBytes = READ_TEXT_MAX_BYTES): string | undefined {
    return this.readBytes(p, maxBytes)?.toString('utf8');
  }

  /** readText's bytes, undecoded (pci.ids is searched as bytes). */
  readBytes(p: string, maxBytes = READ_TEXT_MAX_BYTES): Buffer | undefined {
    const host = this.confined ? this.real(p) : p;
    if (host === null) return undefined;
    let fd: number | undefined;
    try {
      fd = openSync(host, O_RDONLY | O_NONBLOCK | (this.confined ? O_NOFOLLOW : 0));
      const st = fstatSync(fd);
      if (!st.isFile() || st.size > maxBytes) return undefined;
      const chunks: Buffer[] = [];
      let total = 0;
      for (;;) {
        // /proc files say size 0: read until EOF, never past the cap.
        const buf = Buffer.allocUnsafe(Math.min(Math.max(st.size + 1, 65536), maxBytes + 1 - total));
        const n = readSync(fd, buf, 0, buf.length, null);
        if (n === 0) break;
        total += n;
        if (total > maxBytes) return undefined;
        chunks.push(n === buf.length ? buf : buf.subarray(0, n));
      }
      return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, total);
    } catch {
      return undefined;
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
  }

  /** Raw link target; undefined when not a link (or its directory leads outside the root). Works for dangling links too. */
  readLink(p: string): string | undefined {
    const host = this.confined ? this.hostOf(p) : p;
    return host === null ? undefined : this.fileCalls.readlink(host);
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

  /** Fully resolved in-root path (follows every link); undefined when missing or leading outside the root. */
  realpath(p: string): string | undefined {
    try {
      // realpath(3): Node's own realpathSync walks the path in JavaScript, an lstat and a
      // path.resolve per component (8 of reset-plan's 70 ms on the bench's VF).
      if (!this.confined) return this.rel(realpathSync.native(this.abs(p)));
      const host = this.real(p);
      if (host === null || lstatSync(host, { throwIfNoEntry: false }) === undefined) return undefined;
      return this.rel(host);
    } catch {
      return undefined;
    }
  }

  /** Directory entries, sorted; [] when missing (or leading outside the root). */
  list(p: string): string[] {
    const host = this.confined ? this.real(p) : p;
    if (host === null) return [];
    try {
      return readdirSync(host).sort();
    } catch {
      return [];
    }
  }

  /**
   * Directory entries as a set, for answering many lookups in one directory: empty when it is
   * missing (or leads outside the root: nothing in it reads either), undefined when it
   * exists but cannot be listed (ask entry by entry).
   */
  entries(p: string): ReadonlySet<string> | undefined {
    const host = this.confined ? this.real(p) : p;
    if (host === null) return new Set();
    try {
      return new Set(readdirSync(host));
    } catch (err) {
      const code = errnoOf(err);
      return code === 'ENOENT' || code === 'ENOTDIR' ? new Set() : undefined;
    }
  }

  exists(p: string): boolean {
    const host = this.confined ? this.real(p) : p;
    return host !== null && existsSync(host);
  }

  /**
   * True when the path itself (not its target) exists, links included, dangling ones too;
   * a link leading outside the root counts as missing, as it reads.
   */
  lexists(p: string): boolean {
    const host = this.confined ? this.hostOf(p) : p;
    if (host === null) return false;
    try {
      // No exception for the common miss: building one costs more than the syscall.
      const st = lstatSync(host, { throwIfNoEntry: false });
      if (st === undefined) return false;
      return !this.confined || !st.isSymbolicLink() || this.real(p) !== null;
    } catch {
      return false;
    }
  }

  isDir(p: string): boolean {
    const host = this.confined ? this.real(p) : p;
    if (host === null) return false;
    try {
      return statSync(host).isDirectory();
    } catch {
      return false;
    }
  }

  // --- writes ---

  /**
   * One write(2) of `value` to an existing attribute, the way `echo value > file` does.
   * Never creates files: a missing attribute is an error, as it is in sysfs. Only a regular
   * file is written (O_NONBLOCK: a FIFO without a reader fails instead of hanging).
   * Kernel errors become a VfioctlError naming the file and the errno.
   */
  write(p: string, value: string): void {
    this.writes.push({ path: p, value });
    this.onWrite?.(p, value);
    const shown = quoteShort(value.trim());
    const host = this.writable(p, `write ${shown} to`, { followLast: true });
    let fd: number | undefined;
    try {
      fd = openSync(host, constants.O_WRONLY | constants.O_TRUNC | O_NONBLOCK | O_NOFOLLOW);
      if (!fstatSync(fd).isFile()) throw boundaryError(`write ${shown} to`, p, 'not a regular file', 'fix the tree (this was not written)');
      writeSync(fd, value);
    } catch (err) {
      if (err instanceof VfioctlError) throw err;
      const code = errnoOf(err);
      throw new VfioctlError(exitCodeForErrno(code), `cannot write ${shown} to ${p}`, errnoMeaning(code),
        code === 'EACCES' || code === 'EPERM' ? 'run as root (sysfs writes need CAP_SYS_ADMIN)' : undefined, { cause: err });
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
  }

  /**
   * Create or replace a regular file (state under /run, generated config under /etc)
   * atomically and durably: a temporary file beside it, fsync'd, renamed over it, and the
   * directory fsync'd. The temporary file never outlives a failure.
   */
  writeFileAtomic(p: string, content: string, mode = 0o644): void {
    this.forget();
    const dir = this.writable(posix.dirname(p), 'write', { followLast: true, create: true }, p);
    const target = `${dir}/${posix.basename(p)}`;
    const tmp = `${target}.tmp-${process.pid}`;
    let fd: number | undefined;
    let renamed = false;
    try {
      rmSync(tmp, { force: true });
      fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | O_NOFOLLOW, mode);
      writeFileSync(fd, content);
      fsyncSync(fd);
      closeSync(fd);
      fd = undefined;
      renameSync(tmp, target);
      renamed = true;
      const dfd = openSync(dir, O_RDONLY | constants.O_DIRECTORY);
      try {
        fsyncSync(dfd);
      } finally {
        closeSync(dfd);
      }
    } finally {
      if (fd !== undefined) closeSync(fd);
      if (!renamed) {
        try {
          unlinkSync(tmp);
        } catch {
          // never created, or already gone
        }
      }
    }
  }

  /**
   * Create a regular file only if it does not exist (O_CREAT|O_EXCL), for lock files.
   * Returns false when it already exists; other errors throw.
   */
  createExclusive(p: string, content: string, mode = 0o644): boolean {
    this.forget();
    const dir = this.writable(posix.dirname(p), 'create', { followLast: true, create: true }, p);
    const target = `${dir}/${posix.basename(p)}`;
    let fd: number;
    try {
      fd = openSync(target, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | O_NOFOLLOW, mode);
    } catch (err) {
      if (errnoOf(err) === 'EEXIST') return false;
      throw err;
    }
    try {
      writeSync(fd, content);
    } finally {
      closeSync(fd);
    }
    return true;
  }

  /** Remove a regular file (or a link itself, never its target); missing is fine. */
  removeFile(p: string): void {
    this.forget();
    rmSync(this.writable(p, 'remove', { followLast: false }), { force: true });
  }

  /** mkdir -p inside the root; `mode` is given to the last directory when it is created here. */
  mkdirp(p: string, mode?: number): void {
    this.forget();
    const existed = this.lexists(p);
    const host = this.writable(p, 'create directory', { followLast: true, create: true });
    if (mode !== undefined && !existed) chmodSync(host, mode);
  }

  /** The path itself (links not followed): kind, owner, permission bits, size; undefined when missing or outside the root. */
  lstatInfo(p: string): { kind: 'file' | 'dir' | 'link' | 'other'; uid: number; mode: number; size: number } | undefined {
    const host = this.confined ? this.hostOf(p) : p;
    if (host === null) return undefined;
    try {
      const st = lstatSync(host);
      const kind = st.isSymbolicLink() ? 'link' : st.isFile() ? 'file' : st.isDirectory() ? 'dir' : 'other';
      return { kind, uid: st.uid, mode: st.mode & 0o7777, size: st.size };
    } catch {
      return undefined;
    }
  }

  /** Create or replace a symbolic link at `p` pointing to `target` (systemd .wants links). */
  symlink(target: string, p: string): void {
    this.fileOp(p, `symlink -> ${target}`, () => {
      const dir = this.writable(posix.dirname(p), `symlink -> ${target}`, { followLast: true, create: true }, p);
      const host = `${dir}/${posix.basename(p)}`;
      rmSync(host, { force: true });
      symlinkSync(target, host);
    });
  }

  /** Owner, permission bits and kind of a path (follows links); undefined when missing. */
  stat(p: string): FileStat | undefined {
    const host = this.confined ? this.real(p) : p;
    if (host === null) return undefined;
    try {
      const st = statSync(host);
      const kind = st.isFile() ? 'file' : st.isDirectory() ? 'dir' : st.isCharacterDevice() ? 'char' : st.isBlockDevice() ? 'block' : 'other';
      return { mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, kind };
    } catch {
      return undefined;
    }
  }

  /** chown(2) on an existing path (device nodes under /dev); logged like a write. */
  chown(p: string, uid: number, gid: number): void {
    this.fileOp(p, `chown ${uid}:${gid}`, () => chownSync(this.writable(p, `chown ${uid}:${gid}`, { followLast: true }), uid, gid));
  }

  /** chmod(2) on an existing path; logged like a write. */
  chmod(p: string, mode: number): void {
    const what = `chmod ${mode.toString(8).padStart(4, '0')}`;
    this.fileOp(p, what, () => chmodSync(this.writable(p, what, { followLast: true }), mode));
  }

  private fileOp(p: string, what: string, op: () => void): void {
    this.forget();
    this.writes.push({ path: p, value: what });
    this.onWrite?.(p, what);
    try {
      op();
    } catch (err) {
      if (err instanceof VfioctlError) throw err;
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
