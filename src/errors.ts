import { ExitCode, type ExitCodeValue } from './exit-codes.js';

/**
 * An expected failure: printed as `vfioctl: <what>: <why>` plus an optional hint,
 * never with a stack trace.
 */
export class VfioctlError extends Error {
  /**
   * Stable kebab-case word for the `code` of the --json error document (vfioctl(8), ERROR
   * CODES). `code` (above) stays the exit status, which other modules read.
   */
  readonly errorCode: string;

  constructor(
    readonly code: ExitCodeValue,
    readonly what: string,
    readonly why: string,
    readonly hint?: string,
    options?: { cause?: unknown; errorCode?: string },
  ) {
    super(`${what}: ${why}`, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'VfioctlError';
    this.errorCode = options?.errorCode ?? defaultErrorCode(code);
  }
}

/**
 * The error codes of the --json error document: every code vfioctl can print, in one place
 * (the schema in schema/error.schema.json and vfioctl(8) ERROR CODES list the same words).
 */
export const ERROR_CODES = [
  'usage',
  'no-such-device',
  'no-such-group',
  'no-such-driver',
  'no-such-account',
  'no-such-file',
  'no-iommu-group',
  'refused',
  'permission-denied',
  'failed',
  'checks-failed',
  'locked',
  'unsafe-state-dir',
  'internal-error',
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

/** The code an error gets when it names none: one per exit status. */
export function defaultErrorCode(exit: number): ErrorCode {
  switch (exit) {
    case ExitCode.USAGE: return 'usage';
    case ExitCode.NOT_FOUND: return 'no-such-device';
    case ExitCode.REFUSED: return 'refused';
    case ExitCode.PERMISSION: return 'permission-denied';
    case ExitCode.INTERNAL: return 'internal-error';
    default: return 'failed';
  }
}

export const usageError = (what: string, why: string, hint?: string) =>
  new VfioctlError(ExitCode.USAGE, what, why, hint);
export const notFound = (what: string, why: string, hint?: string, errorCode?: ErrorCode) =>
  new VfioctlError(ExitCode.NOT_FOUND, what, why, hint, errorCode ? { errorCode } : undefined);
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
