import { usageError, VfioctlError } from '../errors.js';
import { ExitCode } from '../exit-codes.js';
import { parseBdf, type Bdf } from '../model/address.js';
import type { Host } from '../model/types.js';
import { CATCH_ALL_MODULE, type VfioAlias } from '../plan/variant.js';
import { autoDriver, namedDriver } from '../sysfs/bind-facts.js';
import type { FsRoot } from '../sysfs/fsroot.js';
import { resolveSelector } from '../sysfs/selectors.js';
import type { DesiredDevice } from './desired-state.js';

/** Matches that name one device (they win over VENDOR:DEVICE and group:N in a conflict). */
export const isPattern = (match: string) => /^[0-9a-fA-F]{4}:[0-9a-fA-F]{4}$/.test(match) || /^group:\d+$/.test(match);
export const isIdMatch = (match: string) => /^[0-9a-fA-F]{4}:[0-9a-fA-F]{4}$/.test(match);

export interface Target {
  readonly bdf: Bdf;
  /** The desired driver as written: auto, vfio-pci, a variant, host. */
  readonly driver: string;
  readonly entry: DesiredDevice;
}

export interface Resolution {
  readonly targets: Target[];
  readonly warnings: string[];
}

/**
 * Each entry's devices on this host, one target per device. A device named directly wins over
 * a pattern; two entries of the same kind that disagree are an error (exit 2, nothing changed).
 * A VENDOR:DEVICE pattern that matches nothing is only a warning: the file may cover hardware
 * this host does not have. A missing address or interface is an error, or with skipMissing
 * (the boot unit: a device that is gone must not keep the others from their drivers) a warning.
 */
export function resolveTargets(fs: FsRoot, host: Host, devices: readonly DesiredDevice[], source: string, opts: { skipMissing?: boolean } = {}): Resolution {
  const warnings: string[] = [];
  const chosen = new Map<Bdf, Target>();
  for (const pass of [true, false]) {
    // Patterns first, then direct names, so a direct name overrides a pattern.
    for (const entry of devices.filter((e) => isPattern(e.match) === pass)) {
      let bdfs: Bdf[];
      try {
        bdfs = resolveSelector(fs, host, entry.match, { ids: true, groups: true });
      } catch (err) {
        if (isIdMatch(entry.match)) {
          warnings.push(`${source}:${entry.line}: no device matches ${entry.match}`);
          continue;
        }
        if (opts.skipMissing && err instanceof VfioctlError && err.code === ExitCode.NOT_FOUND) {
          warnings.push(`${source}:${entry.line}: ${err.what}: ${err.why}; skipped`);
          continue;
        }
        throw err;
      }
      for (const bdf of bdfs) {
        const prev = chosen.get(bdf);
        if (prev && isPattern(prev.entry.match) === isPattern(entry.match) && prev.driver !== entry.driver) {
          throw usageError(`${source}:${entry.line}`, `devices[].match "${entry.match}" gives ${bdf} driver "${entry.driver}", but line ${prev.entry.line} ("${prev.entry.match}") gives it "${prev.driver}"`, 'name each device once, or name it by address to override a VENDOR:DEVICE or group:N entry; nothing was changed');
        }
        chosen.set(bdf, { bdf, driver: entry.driver, entry });
      }
    }
  }
  const targets = [...chosen.values()].sort((a, b) => (a.bdf < b.bdf ? -1 : a.bdf > b.bdf ? 1 : 0));
  return { targets, warnings };
}

export interface ConcreteDriver {
  readonly driver: string;
  readonly module: string;
}

/** The driver name and module a desired driver means for one device (auto: best vfio_pci alias). */
export function concreteDriver(fs: FsRoot, host: Host, aliases: readonly VfioAlias[] | null, desired: string, bdf: Bdf | null): ConcreteDriver {
  if (desired === 'vfio-pci' || desired === 'vfio_pci') return { driver: 'vfio-pci', module: CATCH_ALL_MODULE };
  if (desired === 'auto') {
    const best = bdf ? autoDriver(fs, host, aliases, bdf) : undefined;
    if (!best || best.module === CATCH_ALL_MODULE) return { driver: 'vfio-pci', module: CATCH_ALL_MODULE };
    return { driver: best.driver, module: best.module };
  }
  const r = namedDriver(fs, aliases, desired);
  return { driver: r.driver, module: r.module ?? r.driver.replace(/-/g, '_') };
}

/** Canonical BDF text of a direct match, if it is one. */
export const bdfOf = (match: string): Bdf | null => parseBdf(match) ?? null;
