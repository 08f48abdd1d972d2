import * as fs from 'node:fs';
import * as path from 'node:path';

/**
 * Copies the parts of a (real or snapshotted) root that vfioctl reads into a directory
 * that works with `--root`. Only named, small, readable attributes are read (never
 * `config`, `rom`, `remove`, `reset`, …: write-only, blocking or huge), and links are
 * kept as relative links so the tree can move.
 */
export interface SnapshotStats {
  files: number;
  links: number;
  dirs: number;
  devices: number;
  skipped: number;
}

/** Largest attribute copied; sysfs attributes are at most a page. */
const MAX_ATTR = 64 * 1024;

export class SnapshotWriter {
  readonly stats: SnapshotStats = { files: 0, links: 0, dirs: 0, devices: 0, skipped: 0 };
  private readonly made = new Set<string>();

  constructor(readonly srcRoot: string, readonly destRoot: string) {}

  private src(p: string): string {
    return this.srcRoot === '/' ? p : path.join(this.srcRoot, p);
  }

  private dest(p: string): string {
    return path.join(this.destRoot, p);
  }

  mkdir(p: string): void {
    if (this.made.has(p)) return;
    const target = this.dest(p);
    if (!fs.existsSync(target)) {
      fs.mkdirSync(target, { recursive: true });
      this.stats.dirs++;
    }
    this.made.add(p);
  }

  /** Copy one regular file if it is readable and small; false when skipped. */
  file(p: string, transform?: (text: string) => string): boolean {
    let text: string;
    try {
      const st = fs.statSync(this.src(p));
      // Write-only attributes (0200) exist but cannot be read; size is a page for sysfs.
      if (!st.isFile() || (st.mode & 0o444) === 0 || st.size > MAX_ATTR * 16) return this.skip();
      const fd = fs.openSync(this.src(p), fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
      try {
        const buf = Buffer.alloc(MAX_ATTR);
        const n = fs.readSync(fd, buf, 0, MAX_ATTR, null);
        text = buf.subarray(0, n).toString('latin1');
      } finally {
        fs.closeSync(fd);
      }
    } catch {
      return this.skip(); // some attributes fail to read by design (EINVAL, EIO, ENODATA)
    }
    this.mkdir(path.posix.dirname(p));
    fs.writeFileSync(this.dest(p), transform ? transform(text) : text, 'latin1');
    this.stats.files++;
    return true;
  }

  /** An attribute already copied into the snapshot (read back from the destination). */
  readAttr(p: string): string | undefined {
    try {
      return fs.readFileSync(this.dest(p), 'latin1');
    } catch {
      return undefined;
    }
  }

  /** Whole-file copy for larger text (modules.alias), filtered by the caller. */
  textFile(p: string, transform: (text: string) => string): boolean {
    let text: string;
    try {
      text = fs.readFileSync(this.src(p), 'utf8');
    } catch {
      return this.skip();
    }
    this.mkdir(path.posix.dirname(p));
    fs.writeFileSync(this.dest(p), transform(text));
    this.stats.files++;
    return true;
  }

  /** Recreate a symlink; absolute targets are rewritten relative to the snapshot root. */
  link(p: string): string | undefined {
    let target: string;
    try {
      target = fs.readlinkSync(this.src(p));
    } catch {
      this.skip();
      return undefined;
    }
    if (path.posix.isAbsolute(target)) {
      const inRoot = this.srcRoot !== '/' && target.startsWith(this.srcRoot + '/') ? target.slice(this.srcRoot.length) : target;
      target = path.posix.relative(path.posix.dirname(p), inRoot) || '.';
    }
    this.mkdir(path.posix.dirname(p));
    try {
      fs.symlinkSync(target, this.dest(p));
      this.stats.links++;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    return path.posix.resolve(path.posix.dirname(p), target);
  }

  writeText(p: string, text: string): void {
    this.mkdir(path.posix.dirname(p));
    fs.writeFileSync(this.dest(p), text);
    this.stats.files++;
  }

  /** Empty placeholder for things that cannot be copied (device nodes in /dev/vfio). */
  placeholder(p: string): void {
    this.mkdir(path.posix.dirname(p));
    fs.writeFileSync(this.dest(p), '');
    this.stats.files++;
  }

  list(p: string): string[] {
    try {
      return fs.readdirSync(this.src(p)).sort();
    } catch {
      return [];
    }
  }

  lstat(p: string): fs.Stats | undefined {
    try {
      return fs.lstatSync(this.src(p));
    } catch {
      return undefined;
    }
  }

  isLink(p: string): boolean {
    return this.lstat(p)?.isSymbolicLink() === true;
  }

  isDir(p: string): boolean {
    return this.lstat(p)?.isDirectory() === true;
  }

  /** Copy the named attributes of a directory, plus links whose names match. */
  attrs(dir: string, names: readonly string[], linkPatterns: readonly RegExp[] = []): void {
    this.mkdir(dir);
    for (const name of this.list(dir)) {
      const p = `${dir}/${name}`;
      const st = this.lstat(p);
      if (!st) continue;
      if (st.isSymbolicLink()) {
        if (linkPatterns.some((re) => re.test(name))) this.link(p);
      } else if (st.isFile() && names.includes(name)) {
        this.file(p);
      }
    }
  }

  private skip(): false {
    this.stats.skipped++;
    return false;
  }
}
