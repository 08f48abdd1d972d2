/**
 * The system calls `probe` needs: open(2), close(2) and ioctl(2). Node has no ioctl, so it
 * comes from libc through koffi (ffi/libc.ts). This module is imported only by the commands
 * that open VFIO devices: `groups`, `show`, `bind` and the rest never load it for ioctls
 * (scripts/bundle.mjs keeps koffi out of the bundle).
 */
import { closeSync, constants, openSync } from 'node:fs';
import { ExitCode } from '../exit-codes.js';
import { VfioctlError, errnoOf } from '../errors.js';
import { koffiOf, loadLibc, type Koffi } from '../ffi/libc.js';

/** One call's outcome: the return value, or the errno name (`EBUSY`) when it failed. */
export type SysResult = { ok: true; value: number } | { ok: false; errno: string };

export interface VfioSys {
  /** open(2) with O_RDWR on a host path (libuv adds O_CLOEXEC; VFIO's nodes never block on open). */
  open(path: string): SysResult;
  close(fd: number): void;
  /** ioctl(2) with a pointer to `arg`, or with an integer argument, or none. */
  ioctl(fd: number, request: number, arg?: Buffer | number): SysResult;
}

/** errno numbers → names for the errors VFIO and iommufd give (asm-generic/errno-base.h, errno.h). */
const ERRNO_NAMES: Record<number, string> = {
  1: 'EPERM', 2: 'ENOENT', 3: 'ESRCH', 4: 'EINTR', 5: 'EIO', 6: 'ENXIO', 9: 'EBADF', 11: 'EAGAIN', 12: 'ENOMEM',
  13: 'EACCES', 14: 'EFAULT', 16: 'EBUSY', 17: 'EEXIST', 19: 'ENODEV', 22: 'EINVAL', 24: 'EMFILE', 25: 'ENOTTY',
  28: 'ENOSPC', 34: 'ERANGE', 38: 'ENOSYS', 95: 'EOPNOTSUPP',
};
export const errnoName = (n: number): string => ERRNO_NAMES[n] ?? `E${n}`;

/** Opens and closes through Node (real fds); ioctl through the loaded function. */
export function nodeSys(ioctl: (fd: number, request: number, arg: Buffer | number | undefined) => { ret: number; errno: number }): VfioSys {
  return {
    open(path) {
      try {
        return { ok: true, value: openSync(path, constants.O_RDWR) };
      } catch (err) {
        return { ok: false, errno: errnoOf(err) ?? 'EIO' };
      }
    },
    close(fd) {
      try {
        closeSync(fd);
      } catch {
        // closing a probe's fd cannot fail in a way that matters: the process ends soon
      }
    },
    ioctl(fd, request, arg) {
      const { ret, errno } = ioctl(fd, request, arg);
      return ret < 0 ? { ok: false, errno: errnoName(errno) } : { ok: true, value: ret };
    },
  };
}

let loaded: Promise<VfioSys> | undefined;

/**
 * libc's ioctl through koffi, loaded on first use. Where koffi cannot load (no prebuilt
 * binary for the platform, a libc it cannot open) the command fails with exit 1 and says
 * why; nothing else in vfioctl depends on it.
 */
export function loadVfioSys(): Promise<VfioSys> {
  loaded ??= (async () => {
    let koffi: Koffi;
    try {
      koffi = koffiOf(await import('koffi'));
    } catch (err) {
      throw ffiError(err);
    }
    let call: (...args: unknown[]) => number;
    try {
      // Declared variadic as in <sys/ioctl.h>, so the call follows the platform's variadic ABI.
      call = loadLibc(koffi).func('int ioctl(int fd, unsigned long request, ...)');
    } catch (err) {
      throw ffiError(err);
    }
    return nodeSys((fd, request, arg) => {
      const ret = arg === undefined ? call(fd, request) : typeof arg === 'number' ? call(fd, request, 'long', arg) : call(fd, request, 'void *', arg);
      return { ret, errno: ret < 0 ? koffi.errno() : 0 };
    });
  })();
  return loaded;
}

function ffiError(err: unknown): VfioctlError {
  const why = err instanceof Error ? err.message.split('\n')[0]! : String(err);
  return new VfioctlError(
    ExitCode.FAILURE,
    `cannot load koffi, the FFI that issues VFIO's ioctls (${process.platform}-${process.arch}, node ${process.version})`,
    why,
    'probe and reset-plan --verify need it; every other command works without it (reinstall vfioctl with its optional dependencies, or see the README)',
    { cause: err },
  );
}
