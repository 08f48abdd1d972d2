import type { Host } from '../model/types.js';
import type { VfioAlias } from '../plan/variant.js';
import type { FsRoot } from '../sysfs/fsroot.js';
import { usageError } from '../errors.js';
import { formatDesiredState, type DesiredDevice } from './desired-state.js';
import { concreteDriver, isIdMatch, resolveTargets } from './resolve.js';
import { DESIRED_PATH, DRACUT_MODULES_DIR, HOTPLUG_UNIT_PATH, hotplugUnit, DRACUT_MODULE_PATH, INITRAMFS_HOOK_PATH, RULE_PATH, UNIT_PATH, UNIT_WANTS_LINK, UnsafeValueError, dracutModule, initramfsHook, systemdUnit, udevRule, type RuleEntry } from './persist-files.js';

export interface PersistFile {
  readonly path: string;
  /** null: a symlink to `link`. */
  readonly content: string | null;
  readonly link?: string;
  /** File mode (0644 unless given): the initramfs hook must be executable. */
  readonly mode?: number;
}

/** Files that only matter inside the initramfs: a change to them needs it rebuilt. */
export const INITRAMFS_FILES: readonly string[] = [INITRAMFS_HOOK_PATH, DRACUT_MODULE_PATH];

/** Every file persist may have installed, in the order --remove deletes them. */
export const ALL_PERSIST_PATHS: readonly string[] = [UNIT_WANTS_LINK, UNIT_PATH, HOTPLUG_UNIT_PATH, INITRAMFS_HOOK_PATH, DRACUT_MODULE_PATH, RULE_PATH, DESIRED_PATH];

export interface PersistSet {
  readonly files: PersistFile[];
  readonly warnings: string[];
}

/**
 * What `persist` installs for a desired state on this host. Group numbers and interface names
 * are not stable across boots (and an interface vanishes once its device is on vfio), so they
 * are resolved to addresses now; VENDOR:DEVICE stays a pattern and also covers devices added later.
 */
export function buildPersistSet(fs: FsRoot, host: Host, aliases: readonly VfioAlias[] | null, devices: readonly DesiredDevice[], source: string, exec: readonly string[]): PersistSet {
  const warnings: string[] = [];
  const installed: { match: string; driver: string }[] = [];
  const rules: RuleEntry[] = [];

  const direct = devices.filter((d) => !isIdMatch(d.match));
  const { targets, warnings: w } = resolveTargets(fs, host, direct, source);
  warnings.push(...w);
  for (const t of targets) {
    installed.push({ match: t.bdf, driver: t.driver });
    if (t.driver === 'host') continue;
    const c = concreteDriver(fs, host, aliases, t.driver, t.bdf);
    rules.push({ match: { bdf: t.bdf }, driver: c.driver, module: c.module });
  }
  for (const e of devices.filter((d) => isIdMatch(d.match))) {
    const [vendor, device] = e.match.toLowerCase().split(':') as [string, string];
    installed.push({ match: `${vendor}:${device}`, driver: e.driver });
    if (e.driver === 'host') continue;
    const present = [...host.devices.values()].filter((d) => d.vendorId === vendor && d.deviceId === device).map((d) => d.bdf);
    const choices = present.map((b) => concreteDriver(fs, host, aliases, e.driver, b));
    const distinct = [...new Set(choices.map((c) => c.driver))];
    if (distinct.length > 1) {
      throw usageError(`${source}:${e.line}`, `devices[].match "${e.match}" with driver "${e.driver}" means ${distinct.join(' or ')} depending on the device`, 'list those devices by address instead; nothing was changed');
    }
    if (present.length === 0) warnings.push(`${source}:${e.line}: no device matches ${e.match} now; the rule will apply to ones that appear`);
    const c = choices[0] ?? concreteDriver(fs, host, aliases, e.driver, null);
    rules.push({ match: { vendor, device }, driver: c.driver, module: c.module });
  }

  try {
    return {
      files: [
        { path: DESIRED_PATH, content: formatDesiredState(installed) },
        { path: RULE_PATH, content: udevRule(rules) },
        { path: UNIT_PATH, content: systemdUnit(exec) },
        { path: UNIT_WANTS_LINK, content: null, link: `../${UNIT_PATH.split('/').pop()}` },
        { path: HOTPLUG_UNIT_PATH, content: hotplugUnit(exec) },
        // initramfs-tools' hook always (harmless where it is not used); dracut's module where
        // dracut is installed, as its modules directory says.
        { path: INITRAMFS_HOOK_PATH, content: initramfsHook(rules), mode: 0o755 },
        ...(fs.isDir(DRACUT_MODULES_DIR) ? [{ path: DRACUT_MODULE_PATH, content: dracutModule(rules), mode: 0o755 }] : []),
      ],
      warnings,
    };
  } catch (err) {
    if (err instanceof UnsafeValueError) throw usageError('persist', err.message, 'driver and module names may hold only letters, digits, ".", "_" and "-"; nothing was changed');
    throw err;
  }
}

export type FileAction = 'create' | 'replace' | 'unchanged' | 'remove' | 'absent';

/** Compare wanted files with what is on disk. */
export function diffFiles(fs: FsRoot, files: readonly PersistFile[], remove: boolean): { file: PersistFile; action: FileAction }[] {
  return files.map((file) => {
    const exists = fs.lexists(file.path);
    if (remove) return { file, action: exists ? 'remove' : 'absent' };
    if (!exists) return { file, action: 'create' };
    const same = file.content === null ? fs.readLink(file.path) === file.link
      : fs.readText(file.path) === file.content && (file.mode === undefined || fs.lstatInfo(file.path)?.mode === file.mode);
    return { file, action: same ? 'unchanged' : 'replace' };
  });
}
