import { ExitCode, type ExitCodeValue } from './exit-codes.js';

/**
 * An expected failure: printed as `vfioctl: <what>: <why>` plus an optional hint,
 * never with a stack trace.
 */
export class VfioctlError extends Error {
  constructor(
    readonly code: ExitCodeValue,
    readonly what: string,
    readonly why: string,
    readonly hint?: string,
    options?: { cause?: unknown },
  ) {
    super(`${what}: ${why}`, options);
    this.name = 'VfioctlError';
  }
}

export const usageError = (what: string, why: string, hint?: string) =>
  new VfioctlError(ExitCode.USAGE, what, why, hint);
export const notFound = (what: string, why: string, hint?: string) =>
  new VfioctlError(ExitCode.NOT_FOUND, what, why, hint);
export const refused = (what: string, why: string, hint?: string) =>
  new VfioctlError(ExitCode.REFUSED, what, why, hint);

/** errno names → words, for kernel errors reported from sysfs writes. */
const ERRNO_MEANING: Record<string, string> = {
  EBUSY: 'device or resource busy',
  ENODEV: 'no such device (driver does not match or device gone)',
  EINVAL: 'invalid argument (the driver refused the device)',
  EEXIST: 'already exists',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  ENOENT: 'no such file',
  EAGAIN: 'resource temporarily unavailable (probe deferred or lock contended)',
  ERANGE: 'value out of range',
  EROFS: 'read-only file system',
  ENOSPC: 'no space left',
  EIO: 'input/output error',
  ENXIO: 'no such device or address',
  ENOTTY: 'operation not supported by the device',
};

export function errnoMeaning(code: string | undefined): string {
  if (!code) return 'unknown error';
  return `${ERRNO_MEANING[code] ?? code.toLowerCase()} (${code})`;
}

export function errnoOf(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string'
    ? err.code
    : undefined;
}

/** Exit code for a failed sysfs write: permission problems get their own code. */
export function exitCodeForErrno(code: string | undefined): ExitCodeValue {
  return code === 'EACCES' || code === 'EPERM' ? ExitCode.PERMISSION : ExitCode.FAILURE;
}
