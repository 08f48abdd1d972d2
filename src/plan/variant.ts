/**
 * Variant selection (kernel.md §4.2, §4.3): a device's modalias with `pci:` replaced by
 * `vfio_pci:` is matched against every override-only alias in modules.alias; the pattern
 * with the fewest `*` wins, ties go to the first in file order (as libvirt does), and
 * vfio-pci's all-wildcard alias is the fallback. Pure: text in, data out.
 */

/** One `alias vfio_pci:… module` line. */
export interface VfioAlias {
  /** The pattern without the `alias ` keyword, e.g. `vfio_pci:v000015B3d0000101Esv*sd*bc*sc*i*`. */
  readonly pattern: string;
  /** Module name as depmod writes it (underscores). */
  readonly module: string;
  /** Number of `*` in the pattern: fewer is more specific. */
  readonly wildcards: number;
  /** 0-based index among the vfio_pci aliases, the tie-breaker. */
  readonly order: number;
}

export const VFIO_ALIAS_PREFIX = 'vfio_pci:';
/** vfio-pci's own catch-all (kernel.md §11 (c)); used when modules.alias lacks it (built-in vfio_pci). */
export const CATCH_ALL_PATTERN = 'vfio_pci:v*d*sv*sd*bc*sc*i*';
export const CATCH_ALL_MODULE = 'vfio_pci';

const countStars = (s: string) => s.split('*').length - 1;

/** Every `alias vfio_pci:` line, in file order. Other aliases and malformed lines are skipped. */
export function parseVfioAliases(text: string): VfioAlias[] {
  const out: VfioAlias[] = [];
  for (const raw of text.split('\n')) {
    const parts = raw.trim().split(/\s+/);
    if (parts.length !== 3 || parts[0] !== 'alias' || !parts[1]!.startsWith(VFIO_ALIAS_PREFIX)) continue;
    const pattern = parts[1]!;
    out.push({ pattern, module: parts[2]!, wildcards: countStars(pattern), order: out.length });
  }
  return out;
}

/** `pci:v…` → `vfio_pci:v…`; null when the modalias is not a PCI one. */
export function vfioModalias(modalias: string | null): string | null {
  if (!modalias || !modalias.startsWith('pci:')) return null;
  return VFIO_ALIAS_PREFIX + modalias.slice('pci:'.length).trim();
}

const patternCache = new Map<string, RegExp>();

const escapeRe = (c: string) => c.replace(/[.*+?^${}()|[\]\\\/-]/g, '\\$&');

/**
 * fnmatch(3) without flags, as kmod matches modules.alias patterns: `*` any run, `?` any one
 * character, `[...]` a set with ranges, `[!...]` (or `[^...]`) its complement, `\` quoting the
 * next character. A `[` without its `]` is a literal `[`, as glibc treats it.
 */
export function fnmatchRegExp(pattern: string): RegExp {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '*') re += '[\\s\\S]*';
    else if (c === '?') re += '[\\s\\S]';
    else if (c === '\\' && i + 1 < pattern.length) re += escapeRe(pattern[++i]!);
    else if (c === '[') {
      // Find the closing bracket: a `]` right after `[`, `[!` or `[^` is a member.
      let j = i + 1;
      const negate = pattern[j] === '!' || pattern[j] === '^';
      if (negate) j++;
      if (pattern[j] === ']') j++;
      while (j < pattern.length && pattern[j] !== ']') j++;
      if (j >= pattern.length) { re += '\\['; continue; }
      const body = pattern.slice(i + 1 + (negate ? 1 : 0), j);
      let set = '';
      for (let k = 0; k < body.length; k++) {
        if (body[k + 1] === '-' && k + 2 < body.length) { set += `${escapeRe(body[k]!)}-${escapeRe(body[k + 2]!)}`; k += 2; }
        else set += escapeRe(body[k]!);
      }
      re += `[${negate ? '^' : ''}${set}]`;
      i = j;
    } else re += escapeRe(c);
  }
  return new RegExp(`^${re}$`);
}

/** Whether a modules.alias pattern matches the subject, with fnmatch's `*`, `?` and brackets (kmod). */
export function aliasMatches(pattern: string, subject: string): boolean {
  let re = patternCache.get(pattern);
  if (!re) {
    re = fnmatchRegExp(pattern);
    patternCache.set(pattern, re);
  }
  return re.test(subject);
}

const hex = (h: string | null, digits: number) => (h ?? '').toUpperCase().padStart(digits, '0');

/**
 * The modalias the kernel would print (drivers/pci/pci-sysfs.c modalias_show:
 * `pci:v%08Xd%08Xsv%08Xsd%08Xbc%02Xsc%02Xi%02X`) from the id attributes, for a device whose
 * tree has no modalias file. Null when the subsystem ids are unknown too.
 */
export function modaliasFromIds(d: { vendorId: string; deviceId: string; subsystemVendorId: string | null; subsystemDeviceId: string | null; classCode: string }): string | null {
  if (d.subsystemVendorId === null || d.subsystemDeviceId === null || !/^[0-9a-f]{6}$/i.test(d.classCode)) return null;
  const c = d.classCode;
  return `pci:v${hex(d.vendorId, 8)}d${hex(d.deviceId, 8)}sv${hex(d.subsystemVendorId, 8)}sd${hex(d.subsystemDeviceId, 8)}bc${hex(c.slice(0, 2), 2)}sc${hex(c.slice(2, 4), 2)}i${hex(c.slice(4, 6), 2)}`;
}

/** The modalias to match: the device's own, else the one built from its ids. */
export function matchModalias(d: { modalias: string | null } & Parameters<typeof modaliasFromIds>[0]): string | null {
  return d.modalias ?? modaliasFromIds(d);
}

/** A module's presence on disk: true, false, or null when the tree cannot tell (no modules.dep). */
export type ModulePresence = (module: string) => boolean | null;

/** The ranked candidates with the first one whose module is present (or not known missing) first. */
export function preferPresent(ranked: readonly VfioAlias[], present: ModulePresence): VfioAlias[] {
  const i = ranked.findIndex((a) => present(a.module) !== false);
  if (i <= 0) return [...ranked];
  return [ranked[i]!, ...ranked.slice(0, i), ...ranked.slice(i + 1)];
}

/** Matching aliases, most specific first (fewest wildcards, then file order). */
export function rankAliases(aliases: readonly VfioAlias[], modalias: string | null): VfioAlias[] {
  const subject = vfioModalias(modalias);
  if (subject === null) return [];
  return aliases
    .filter((a) => aliasMatches(a.pattern, subject))
    .sort((a, b) => a.wildcards - b.wildcards || a.order - b.order);
}

/**
 * Ranked candidates including the catch-all even when modules.alias does not list it
 * (vfio_pci built in, or no modules.alias at all): vfio-pci binds any function.
 */
export function rankWithFallback(aliases: readonly VfioAlias[], modalias: string | null): VfioAlias[] {
  if (vfioModalias(modalias) === null) return [];
  const ranked = rankAliases(aliases, modalias);
  if (ranked.some((a) => a.module === CATCH_ALL_MODULE)) return ranked;
  return [...ranked, { pattern: CATCH_ALL_PATTERN, module: CATCH_ALL_MODULE, wildcards: countStars(CATCH_ALL_PATTERN), order: aliases.length }];
}

/** Whether any alias of `module` matches the device: the guard before naming it in driver_override. */
export function moduleMatches(aliases: readonly VfioAlias[], module: string, modalias: string | null): boolean {
  if (module === CATCH_ALL_MODULE) return true;
  const subject = vfioModalias(modalias);
  if (subject === null) return false;
  return aliases.some((a) => a.module === module && aliasMatches(a.pattern, subject));
}

/** Module names never contain dashes in modules.alias or /sys/module; users may type either. */
export function normalizeModuleName(name: string): string {
  return name.replace(/-/g, '_');
}

/** Whether the module owns any vfio_pci alias, i.e. is a vfio-pci variant (or vfio_pci itself). */
export function isVariantModule(aliases: readonly VfioAlias[], module: string): boolean {
  const m = normalizeModuleName(module);
  return m === CATCH_ALL_MODULE || aliases.some((a) => a.module === m);
}
