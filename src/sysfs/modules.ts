import type { FsRoot } from './fsroot.js';
import { usageError } from '../errors.js';
import { driverNameProblem, quoteShort } from '../model/names.js';
import { driverPath, moduleDriversPath, modulesAliasPath } from './paths.js';
import { normalizeModuleName, parseVfioAliases, type VfioAlias } from '../plan/variant.js';

/**
 * Module and driver names as the running kernel (or the tree under --root) shows them
 * (kernel.md §4.4): `/sys/module/MOD/drivers/pci:NAME` maps module → driver,
 * `/sys/bus/pci/drivers/NAME/module` maps back.
 */

/** Driver names whose module differs by more than dashes (used only until the module is loaded). */
const KNOWN_DRIVER_OF_MODULE: Readonly<Record<string, string>> = {
  vfio_pci: 'vfio-pci',
  xe_vfio_pci: 'xe-vfio-pci',
};

export interface AliasFile {
  readonly path: string;
  /** null when the file is missing (no modules for this release under the root). */
  readonly aliases: readonly VfioAlias[] | null;
}

/** The vfio_pci aliases of the root's kernel release. */
export function readVfioAliases(fs: FsRoot, release: string | null): AliasFile {
  const path = modulesAliasPath(release ?? 'unknown');
  const text = release === null ? undefined : fs.readText(path);
  return { path, aliases: text === undefined ? null : parseVfioAliases(text) };
}

export function driverRegistered(fs: FsRoot, driver: string): boolean {
  return fs.isDir(driverPath(driver));
}

/** Driver the loaded module registered (`pci:NAME`); undefined when not loaded or no PCI driver. */
export function loadedDriverOfModule(fs: FsRoot, module: string): string | undefined {
  const entry = fs.list(moduleDriversPath(normalizeModuleName(module))).find((e) => e.startsWith('pci:'));
  return entry?.slice('pci:'.length);
}

/** Best knowledge of a module's driver name: the loaded one, else the known table, else the module name. */
export function driverOfModule(fs: FsRoot, module: string): { driver: string; loaded: boolean } {
  const loaded = loadedDriverOfModule(fs, module);
  if (loaded !== undefined) return { driver: loaded, loaded: true };
  const m = normalizeModuleName(module);
  return { driver: KNOWN_DRIVER_OF_MODULE[m] ?? m, loaded: false };
}

/** Module that registered a driver (from its `module` link); undefined for built-ins without one. */
export function moduleOfDriver(fs: FsRoot, driver: string): string | undefined {
  return fs.linkName(`${driverPath(driver)}/module`);
}

export interface ResolvedDriver {
  readonly driver: string;
  /** null when the driver is registered but has no module link (built in). */
  readonly module: string | null;
  readonly registered: boolean;
}

/**
 * Resolve a user-given name that may be a module or a driver name (`vfio_pci`, `vfio-pci`,
 * `xe_vfio_pci`, `xe-vfio-pci`). Undefined when nothing by that name is registered, loaded
 * or listed in modules.alias.
 */
export function resolveDriverName(fs: FsRoot, name: string, aliases: readonly VfioAlias[] | null): ResolvedDriver | undefined {
  if (driverRegistered(fs, name)) return { driver: name, module: moduleOfDriver(fs, name) ?? null, registered: true };
  const module = normalizeModuleName(name);
  const loaded = loadedDriverOfModule(fs, module);
  if (loaded !== undefined) return { driver: loaded, module, registered: driverRegistered(fs, loaded) };
  // A driver registered under the dashed or underscored spelling of the name.
  for (const alt of [module, name.replace(/_/g, '-')]) {
    if (alt !== name && driverRegistered(fs, alt)) return { driver: alt, module: moduleOfDriver(fs, alt) ?? null, registered: true };
  }
  const known = KNOWN_DRIVER_OF_MODULE[module];
  const knownByDriver = Object.entries(KNOWN_DRIVER_OF_MODULE).find(([, d]) => d === name)?.[0];
  if (knownByDriver) return { driver: name, module: knownByDriver, registered: false };
  if (aliases?.some((a) => a.module === module) || known) return { driver: known ?? module, module, registered: false };
  return undefined;
}

/**
 * A driver name given in an option (--variant, --to, --bind), checked before anything uses it:
 * a name that cannot be a driver is a usage error naming the option (exit 2).
 */
export function checkDriverOption(value: string, option: string): string {
  const problem = driverNameProblem(value);
  if (problem !== null) throw usageError(`${option} ${quoteShort(value)}`, `${problem}: not a driver or module name`, 'name a driver as listed in /sys/bus/pci/drivers or a module such as vfio-pci');
  return value;
}
