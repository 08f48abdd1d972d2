import { closeSync, openSync, readSync, readlinkSync } from 'node:fs';

/**
 * The system calls an attribute read makes (open, read, close, readlink), errno style: a
 * negative result is -errno. FsRoot reads through Node's (the default) or libc's through
 * koffi (libcFileCalls in libc-file-calls.ts), which a scan of thousands of functions
 * takes: Node's wrappers validate their arguments in JavaScript and throw on every miss,
 * about a third of the user time of a 4,096-function scan.
 */
export interface FileCalls {
  /** Whose calls these are (tests, --verbose). */
  readonly kind: 'node' | 'libc';
  /** open(2) of a host path: a descriptor, or -errno. */
  open(path: string, flags: number): number;
  /** read(2) into `buf` at the file's position: bytes read, or -errno. */
  read(fd: number, buf: Buffer): number;
  close(fd: number): void;
  /** readlink(2): the target (UTF-8), or undefined when it fails. */
  readlink(path: string): string | undefined;
}

/** EIO, for an error without an errno (libuv's errors carry -errno on Unix). */
const EIO = 5;

function failed(err: unknown): number {
  const n = (err as NodeJS.ErrnoException).errno;
  return typeof n === 'number' && n < 0 ? n : -EIO;
}

/** Node's own calls (libuv adds O_CLOEXEC to every open). */
export const nodeFileCalls: FileCalls = {
  kind: 'node',
  open(path, flags) {
    try {
      return openSync(path, flags);
    } catch (err) {
      return failed(err);
    }
  },
  read(fd, buf) {
    try {
      return readSync(fd, buf, 0, buf.length, -1);
    } catch (err) {
      return failed(err);
    }
  },
  close(fd) {
    try {
      closeSync(fd);
    } catch {
      // close(2) releases the descriptor even when it reports an error
    }
  },
  readlink(path) {
    try {
      return readlinkSync(path);
    } catch {
      return undefined;
    }
  },
};
