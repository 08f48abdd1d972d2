import type { FsRoot } from './fsroot.js';
import { usageError } from '../errors.js';
import { driverNameProblem, isDriverName, quoteShort } from '../model/names.js';
import { driverPath, isReleaseName, moduleDriversPath, modulesAliasPath } from './paths.js';
import { normalizeModuleName, parseVfioAliases, type ModulePresence, type VfioAlias } from '../plan/variant.js';

/**
 * Module and driver names as the running kernel (or the tree under --root) shows them
 * (kernel.md §4.4): `/sys/module/MOD/drivers/pci:NAME` maps module → driver,
 * `/sys/bus/pci/drivers/NAME/module` maps back.
 *
 * Names are never paths (src/model/names.ts): a name read from sysfs or modules.alias that
 * fails the grammar is ignored, never joined into a path; a name given by the user that fails
 * it is a usage error (exit 2).
 */
export { checkDriverOption } from '../model/names.js';

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

/**
 * The vfio_pci aliases of the root's kernel release. A release that is not one path component
 * (`/proc/sys/kernel/osrelease` reading `../..`) reads no file; aliases naming something that
 * is not a module name are dropped.
 */
export function readVfioAliases(fs: FsRoot, release: string | null): AliasFile {
  const valid = release !== null && isReleaseName(release);
  const path = modulesAliasPath(valid ? release : 'unknown');
  const text = valid ? fs.readText(path) : undefined;
  return { path, aliases: text === undefined ? null : parseVfioAliases(text).filter((a) => isDriverName(a.module)) };
}

export function driverRegistered(fs: FsRoot, driver: string): boolean {
  return isDriverName(driver) && fs.isDir(driverPath(driver));
}

/** Driver the loaded module registered (`pci:NAME`); undefined when not loaded or no PCI driver. */
export function loadedDriverOfModule(fs: FsRoot, module: string): string | undefined {
  const m = normalizeModuleName(module);
  if (!isDriverName(m)) return undefined;
  for (const e of fs.list(moduleDriversPath(m))) {
    if (e.startsWith('pci:') && isDriverName(e.slice('pci:'.length))) return e.slice('pci:'.length);
  }
  return undefined;
}

/**
 * Best knowledge of a module's driver name: the loaded one, else the known table, else the
 * module name. A module that is not a name is a usage error (modules.alias entries are
 * filtered by readVfioAliases, so only a caller's unchecked name gets here).
 */
export function driverOfModule(fs: FsRoot, module: string): { driver: string; loaded: boolean } {
  const m = normalizeModuleName(module);
  const problem = driverNameProblem(m);
  if (problem !== null) throw usageError(`module ${quoteShort(module)}`, `a module name ${problem}`);
  const loaded = loadedDriverOfModule(fs, module);
  if (loaded !== undefined) return { driver: loaded, loaded: true };
  return { driver: KNOWN_DRIVER_OF_MODULE[m] ?? m, loaded: false };
}

/** Module that registered a driver (from its `module` link); undefined for built-ins without one, or a name that is none. */
export function moduleOfDriver(fs: FsRoot, driver: string): string | undefined {
  if (!isDriverName(driver)) return undefined;
  const module = fs.linkName(`${driverPath(driver)}/module`);
  return module !== undefined && isDriverName(module) ? module : undefined;
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
 * or listed in modules.alias. A name that fails the grammar (empty, `..`, a path, blanks,
 * control characters, too long) is a usage error (exit 2): callers that know the option or
 * field check it first with checkDriverOption for a message naming it.
 */
export function resolveDriverName(fs: FsRoot, name: string, aliases: readonly VfioAlias[] | null): ResolvedDriver | undefined {
  const problem = driverNameProblem(name);
  if (problem !== null) throw usageError(`driver ${quoteShort(name)}`, `a driver or module name ${problem}`, 'give a driver or module name such as vfio-pci; nothing was changed');
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


const KO = /\.ko(\.(xz|gz|zst))?$/;

/** `kernel/drivers/vfio/pci/mlx5/mlx5-vfio-pci.ko.xz` → `mlx5_vfio_pci`. */
export const moduleOfPath = (p: string) => normalizeModuleName((p.split('/').pop() ?? '').replace(KO, ''));

/**
 * Whether a module can be loaded on the root's kernel: it is loaded (`/sys/module/M`), built in
 * (`modules.builtin`), or listed in `modules.dep` with its `.ko` file present. A module that
 * modules.alias names but none of these knows would make modprobe fail at bind time. Without
 * modules.dep the answer is null (unknown) for modules neither loaded nor built in.
 */
export function modulePresence(fs: FsRoot, release: string | null): ModulePresence {
  const valid = release !== null && isReleaseName(release);
  const dir = `/lib/modules/${valid ? release : 'unknown'}`;
  const dep = valid ? fs.readText(`${dir}/modules.dep`) : undefined;
  const builtin = valid ? fs.readText(`${dir}/modules.builtin`) : undefined;
  const files = new Map<string, string>();
  for (const line of (dep ?? '').split('\n')) {
    const file = line.split(':')[0]?.trim() ?? '';
    if (!KO.test(file) || file.split('/').includes('..')) continue;
    files.set(moduleOfPath(file), file.startsWith('/') ? file : `${dir}/${file}`);
  }
  const builtins = new Set((builtin ?? '').split('\n').map((l) => l.trim()).filter((l) => KO.test(l)).map(moduleOfPath));
  const cache = new Map<string, boolean | null>();
  return (module) => {
    const m = normalizeModuleName(module);
    let v = cache.get(m);
    if (v !== undefined) return v;
    if (isDriverName(m) && fs.isDir(`/sys/module/${m}`)) v = true;
    else if (builtins.has(m)) v = true;
    else if (dep === undefined) v = null;
    else { const f = files.get(m); v = f !== undefined && fs.exists(f); }
    cache.set(m, v);
    return v;
  };
}
