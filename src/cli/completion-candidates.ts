import { isBdf } from '../model/address.js';
import type { FsRoot } from '../sysfs/fsroot.js';
import { CLASS_BLOCK, CLASS_NET, IOMMU_GROUPS, PCI_DEVICES, PCI_DRIVERS, PROC_OSRELEASE, SYS_BLOCK, modulesAliasPath } from '../sysfs/paths.js';

/** What a completion script asks `vfioctl completion --candidates KIND` for. */
export const CANDIDATE_KINDS = ['device', 'selector', 'group', 'driver'] as const;
export type CandidateKind = (typeof CANDIDATE_KINDS)[number];

/** Class devices (interfaces, disks) that sit below a PCI function. */
function pciBacked(fs: FsRoot, dir: string): string[] {
  return fs.list(dir).filter((name) => {
    const real = fs.realpath(`${dir}/${name}`) ?? fs.linkTarget(`${dir}/${name}`);
    return real !== undefined && real.split('/').some(isBdf);
  });
}

/**
 * Completion candidates from the tree under the root: PCI addresses in full and short form,
 * interfaces and disks for a device; also group:N where a selector takes groups; group
 * numbers; driver names for --variant, --to and --bind. One word each, sorted, no duplicates.
 */
export function completionCandidates(fs: FsRoot, kind: CandidateKind): string[] {
  const groups = fs.list(IOMMU_GROUPS).filter((g) => /^\d+$/.test(g)).sort((a, b) => Number(a) - Number(b));
  const out: string[] = [];
  if (kind === 'device' || kind === 'selector') {
    for (const bdf of fs.list(PCI_DEVICES).filter(isBdf).sort()) {
      out.push(bdf);
      if (bdf.startsWith('0000:')) out.push(bdf.slice(5));
    }
    out.push(...pciBacked(fs, CLASS_NET).sort());
    const block = pciBacked(fs, CLASS_BLOCK);
    out.push(...(block.length ? block : pciBacked(fs, SYS_BLOCK)).sort());
    if (kind === 'selector') out.push(...groups.map((g) => `group:${g}`));
  } else if (kind === 'group') {
    out.push(...groups);
  } else {
    const variants = new Set<string>();
    const release = fs.read(PROC_OSRELEASE)?.trim();
    const alias = release ? fs.readText(modulesAliasPath(release)) : undefined;
    for (const m of (alias ?? '').matchAll(/^alias vfio_pci:\S+ (\S+)$/gm)) variants.add(m[1]!);
    out.push('auto', 'vfio-pci', ...[...variants].sort(), ...fs.list(PCI_DRIVERS).sort());
  }
  return [...new Set(out)];
}
