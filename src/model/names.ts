/**
 * Names are never paths. A driver or module name from any source (an option, an apply file,
 * a state record, modules.alias, /sys/module) must pass this grammar before it is joined into
 * a path or handed to a program. The kernel's own names are short words of letters, digits,
 * `_`, `-`, `.` and `+` (driver_override takes anything up to a page, but no driver registers
 * such a name); anything else cannot name a PCI driver or module.
 */

import { usageError } from '../errors.js';

/** Longest driver or module name accepted (the kernel's MODULE_NAME_LEN is 56; drivers are shorter). */
export const NAME_MAX = 64;

const NAME_SYNTAX = /^[A-Za-z0-9_+.-]+$/;

/** True when `name` may be used as a driver or module name (and so as one path component). */
export function isDriverName(name: unknown): name is string {
  return typeof name === 'string' && name.length > 0 && name.length <= NAME_MAX && name !== '.' && name !== '..' && NAME_SYNTAX.test(name);
}

/** A short, printable rendering of an untrusted value for error messages (never the whole of it). */
export function quoteShort(value: unknown, max = 40): string {
  const text = typeof value === 'string' ? value : JSON.stringify(value) ?? String(value);
  const cut = text.length > max ? `${text.slice(0, max)}…` : text;
  return JSON.stringify(cut);
}

/** Why `name` is not a driver or module name, or null when it is one. */
export function driverNameProblem(name: unknown): string | null {
  if (typeof name !== 'string') return 'is not a string';
  if (name.length === 0) return 'is empty';
  if (name.length > NAME_MAX) return `is longer than ${NAME_MAX} characters`;
  if (name === '.' || name === '..') return 'is not a name';
  if (!NAME_SYNTAX.test(name)) return 'may hold only letters, digits, "_", "-", "." and "+"';
  return null;
}

/**
 * Check a driver or module name given in an option (`--variant`, `--to`, `--bind`) and return
 * it without surrounding blanks. Keywords such as `auto` pass the grammar. A value that is not
 * a name is a usage error (exit 2) naming the option; whether a driver by that name exists is
 * for the caller to decide (exit 3 when none does).
 */
export function checkDriverOption(value: string, option: string): string {
  const name = typeof value === 'string' ? value.trim() : value;
  const problem = driverNameProblem(name);
  if (problem !== null) {
    throw usageError(`${option} ${quoteShort(value)}`, `a driver or module name ${problem}`,
      `give a driver or module name such as vfio-pci (at most ${NAME_MAX} letters, digits, "_", "-", "." and "+"); nothing was changed`);
  }
  return name as string;
}
