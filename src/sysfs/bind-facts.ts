import { notFound } from '../errors.js';
import type { Bdf } from '../model/address.js';
import { deviceOf, groupOf } from '../model/host.js';
import type { Host } from '../model/types.js';
import type { DriverChoice } from '../plan/bind-plan.js';
import { CATCH_ALL_MODULE, isVariantModule, matchModalias, moduleMatches, preferPresent, rankWithFallback, type ModulePresence, type VfioAlias } from '../plan/variant.js';
import type { FsRoot } from './fsroot.js';
import { hostUseChecker, type HostUse } from './in-use.js';
import { driverOfModule, driverRegistered, moduleOfDriver, modulePresence, readVfioAliases, resolveDriverName } from './modules.js';
import { resolveSelector } from './selectors.js';

/**
 * The facts a bind, unbind, apply, vfs or persist plan needs from the system, gathered once
 * here so the commands stay thin and agree: which devices a selector names, which driver
 * `auto` means, which drivers are vfio-family, whether noiommu is on, who uses what.
 */

/** Selected devices in address order, and those named directly (not only through group:N). */
export function selectDevices(fs: FsRoot, host: Host, selectors: readonly string[]): { selected: Bdf[]; explicit: Set<Bdf> } {
  const all = new Set<Bdf>();
  const explicit = new Set<Bdf>();
  for (const text of selectors) {
    for (const b of resolveSelector(fs, host, text, { ids: true, groups: true })) {
      all.add(b);
      if (!/^group:/.test(text.trim())) explicit.add(b);
    }
  }
  return { selected: [...host.devices.keys()].filter((b) => all.has(b)), explicit };
}

/** Drivers of this host that belong to the vfio family by their module's vfio_pci aliases. */
export function vfioFamilyDrivers(fs: FsRoot, host: Host, aliases: readonly VfioAlias[] | null): Set<string> {
  const out = new Set<string>();
  const names = new Set([...host.devices.values()].flatMap((d) => [d.driver, d.driverOverride]).filter((x): x is string => x !== null));
  for (const name of names) {
    const module = moduleOfDriver(fs, name);
    if (module !== undefined && isVariantModule(aliases ?? [], module)) out.add(name);
  }
  return out;
}

export function noiommuEnabled(fs: FsRoot): boolean {
  return /^[Y1]/.test(fs.read('/sys/module/vfio/parameters/enable_unsafe_noiommu_mode')?.trim() ?? '');
}

const presenceCache = new WeakMap<FsRoot, Map<string, ModulePresence>>();

/** Whether a module is on disk for the host's kernel (src/sysfs/modules.ts), read once per root and release. */
export function presenceOf(fs: FsRoot, host: Host): ModulePresence {
  const byRelease = presenceCache.get(fs) ?? presenceCache.set(fs, new Map()).get(fs)!;
  const key = host.kernelRelease ?? '';
  return byRelease.get(key) ?? byRelease.set(key, modulePresence(fs, host.kernelRelease)).get(key)!;
}

/**
 * What `auto` means for one device: its most specific vfio_pci alias (vfio-pci's catch-all
 * last), skipping modules known to be missing on disk (modules.alias can name a module that
 * is not installed). The one definition.
 */
export function autoDriver(fs: FsRoot, host: Host, aliases: readonly VfioAlias[] | null, bdf: Bdf): { driver: string; module: string; loaded: boolean; missing: boolean } | undefined {
  const present = presenceOf(fs, host);
  const best = preferPresent(rankWithFallback(aliases ?? [], matchModalias(deviceOf(host, bdf))), present)[0];
  if (!best) return undefined;
  const { driver, loaded } = driverOfModule(fs, best.module);
  return { driver, module: best.module, loaded, missing: present(best.module) === false };
}

/** A named driver (--variant, an apply entry), resolved; exit 3 when nothing has that name. */
export function namedDriver(fs: FsRoot, aliases: readonly VfioAlias[] | null, name: string): { driver: string; module: string | null; registered: boolean } {
  const r = resolveDriverName(fs, name, aliases);
  if (!r) throw notFound(`driver "${name}"`, 'no such driver or module (not registered, not loaded, not in modules.alias)', "run 'vfioctl variants SELECTOR' to list the candidates", 'no-such-driver');
  return r;
}

/** The driver each device goes to: `variant` for the selected ones, auto for group peers. */
export function chooseDrivers(fs: FsRoot, host: Host, aliases: readonly VfioAlias[] | null, variant: string, selected: readonly Bdf[], peers: readonly Bdf[]): Map<Bdf, DriverChoice> {
  const choices = new Map<Bdf, DriverChoice>();
  const auto = (bdf: Bdf): DriverChoice | undefined => {
    const a = autoDriver(fs, host, aliases, bdf);
    if (!a) return undefined;
    const registered = driverRegistered(fs, a.driver);
    return { driver: a.driver, module: a.module, registered, matches: true, missing: !registered && a.missing };
  };
  const named = variant === 'auto' ? undefined : namedDriver(fs, aliases, variant);
  for (const bdf of selected) {
    if (!named) {
      const c = auto(bdf);
      if (c) choices.set(bdf, c);
      continue;
    }
    const isCatchAll = named.module === CATCH_ALL_MODULE || named.driver === 'vfio-pci';
    const missing = !named.registered && named.module !== null && presenceOf(fs, host)(named.module) === false;
    choices.set(bdf, { ...named, missing, matches: isCatchAll || (named.module !== null && moduleMatches(aliases ?? [], named.module, matchModalias(deviceOf(host, bdf)))) });
  }
  // Peers brought in by --group get their own best match, whatever --variant says.
  for (const bdf of peers) {
    if (choices.has(bdf)) continue;
    const c = auto(bdf);
    if (c) choices.set(bdf, c);
  }
  return choices;
}

/** Every device of the IOMMU groups of `bdfs`. */
export function groupPeers(host: Host, bdfs: readonly Bdf[]): Bdf[] {
  return [...new Set(bdfs.map((b) => deviceOf(host, b).iommuGroup))].flatMap((g) => (g === null ? [] : groupOf(host, g)?.devices ?? []));
}

/** What the host uses each of `bdfs` for (mounted disks, addressed interfaces, open VFIO fds, …). */
export function hostUses(fs: FsRoot, host: Host, bdfs: Iterable<Bdf>): Map<Bdf, HostUse[]> {
  const check = hostUseChecker(fs, host);
  return new Map([...new Set(bdfs)].map((b) => [b, check(b)]));
}

/** The vfio_pci aliases of the host's kernel (null when its modules.alias is missing). */
export function vfioAliases(fs: FsRoot, host: Host): readonly VfioAlias[] | null {
  return readVfioAliases(fs, host.kernelRelease).aliases;
}
