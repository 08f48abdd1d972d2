import type { FileCalls } from './file-calls.js';
import { loadLibc, type Koffi } from '../ffi/libc.js';

/** A symbolic link's target is at most PATH_MAX - 1 bytes; a full buffer means it was cut. */
const LINK_BUFFER = Buffer.allocUnsafe(4096);

/**
 * libc's open, read, close and readlink through koffi: one native call each, where Node's
 * run JavaScript argument checks and build an exception per miss. Null when libc cannot be
 * loaded (the caller keeps Node's calls). A path with a NUL byte fails as ENOENT here, as
 * Node refuses it: koffi would pass the C string cut at the NUL, another path.
 */
export function libcFileCalls(koffi: Koffi): FileCalls | null {
  let open: (...args: unknown[]) => number;
  let read: (...args: unknown[]) => number;
  let close: (...args: unknown[]) => number;
  let readlink: (...args: unknown[]) => number;
  if (process.platform !== 'linux') return null;
  try {
    const libc = loadLibc(koffi);
    open = libc.func('int open(const char *path, int flags)');
    read = libc.func('long read(int fd, _Out_ uint8_t *buf, unsigned long count)');
    close = libc.func('int close(int fd)');
    readlink = libc.func('long readlink(const char *path, _Out_ uint8_t *buf, unsigned long size)');
  } catch {
    return null;
  }
  const ENOENT = 2;
  return {
    kind: 'libc',
    open(path, flags) {
      if (path.includes('\0')) return -ENOENT;
      // O_CLOEXEC as libuv adds it: no descriptor of vfioctl's leaks into a child.
      const fd = open(path, flags | O_CLOEXEC);
      return fd < 0 ? -koffi.errno() : fd;
    },
    read(fd, buf) {
      const n = read(fd, buf, buf.length);
      return n < 0 ? -koffi.errno() : n;
    },
    close(fd) {
      close(fd);
    },
    readlink(path) {
      if (path.includes('\0')) return undefined;
      const n = readlink(path, LINK_BUFFER, LINK_BUFFER.length);
      return n < 0 || n >= LINK_BUFFER.length ? undefined : LINK_BUFFER.toString('utf8', 0, n);
    },
  };
}

/**
 * O_CLOEXEC, which node:fs does not export: 02000000 on Linux for every architecture Node
 * runs on except SPARC, Alpha and PA-RISC (none of which Node supports).
 */
const O_CLOEXEC = 0o2000000;
