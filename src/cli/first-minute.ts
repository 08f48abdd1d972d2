import { readdirSync, realpathSync } from 'node:fs';
import { isAbsolute, join, relative, resolve } from 'node:path';
import type { CliContext } from './context.js';

/** The sample tree the repository and package ship (a copy of a lab capture), relative to the package. */
export const SAMPLE_TREE = 'examples/hosts/switch';

/**
 * How to name the sample tree in a hint: relative when vfioctl runs from its own directory
 * (a checkout), else absolute, so the command works as printed. null when it is not there:
 * the repository has it; the npm package does not (npm drops the tree's symlinks).
 */
export function sampleTreePath(ctx: CliContext): string | null {
  if (!ctx.packageDir) return null;
  const abs = join(ctx.packageDir, SAMPLE_TREE);
  try {
    if (readdirSync(join(abs, 'sys/bus/pci/devices')).length === 0) return null;
  } catch {
    return null;
  }
  const cwd = process.cwd();
  return resolve(cwd, SAMPLE_TREE) === abs ? SAMPLE_TREE : abs;
}

/** `vfioctl --root R` for a root other than /, so a suggested command reads the same tree. */
export function rootPrefix(root: string): string {
  return root === '/' ? 'vfioctl' : `vfioctl --root ${shellWord(root)}`;
}

/**
 * A hint with its suggested vfioctl command lines ('vfioctl …' in quotes, or a hint that
 * starts with one) naming vfioctl the way it runs here (ctx.invokedAs: `./bin/vfioctl` when
 * it is not on PATH).
 */
export function personalise(ctx: CliContext, hint: string): string {
  if (!ctx.invokedAs || !/(^|')vfioctl /.test(hint)) return hint;
  const name = ctx.invokedAs();
  return name === 'vfioctl' ? hint : hint.replace(/(^|')vfioctl (?=\S)/g, `$1${shellWord(name)} `);
}

/** How bin/vfioctl was started, as a command: `vfioctl` if PATH finds this one, else its path. */
export function invokedAs(script: string, env: Record<string, string | undefined>, cwd: string): string {
  try {
    const real = realpathSync(script);
    for (const dir of (env.PATH ?? '').split(':')) {
      if (!dir) continue;
      try {
        if (realpathSync(join(dir, 'vfioctl')) === real) return 'vfioctl';
      } catch {
        // not in this directory
      }
    }
  } catch {
    return 'vfioctl';
  }
  const rel = relative(cwd, resolve(cwd, script));
  return rel.startsWith('..') || isAbsolute(rel) ? resolve(cwd, script) : `./${rel}`;
}

/** A path as one shell word (quoted only when it has to be). */
export function shellWord(s: string): string {
  return /^[A-Za-z0-9_./:@%+=,-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * What `groups` says on a host (or tree) without IOMMU groups: why, as far as the command
 * line tells, and where to go next: `vfioctl doctor` for this host, and a sample tree to see
 * what vfioctl shows on a host that has an IOMMU.
 */
export function noIommuMessage(ctx: CliContext, root: string, cmdline: string): { text: string; hint: string } {
  const off = /\b(intel_iommu=off|amd_iommu=off|iommu=off)\b/.exec(cmdline)?.[1];
  const text = off
    ? `No IOMMU groups: the IOMMU is disabled on the kernel command line (${off}).`
    : `No IOMMU groups: the IOMMU is off in firmware or on the kernel command line, or ${root === '/' ? 'this machine' : `the machine captured in ${root}`} has none.`;
  const sample = sampleTreePath(ctx);
  const hint = `run '${rootPrefix(root)} doctor' to see what to change` +
    (sample ? `; to see vfioctl on a host with an IOMMU, run 'vfioctl --root ${shellWord(sample)} groups' (a sample tree it ships)` : '');
  return { text, hint: personalise(ctx, hint) };
}
