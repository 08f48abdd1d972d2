import * as fs from 'node:fs';
import * as path from 'node:path';

/**
 * Everything a tree holds, as comparable text: each file's content and mode, each link's
 * target (directories only through what they hold). vfioctl's own bookkeeping (lock, holder, empty state
 * directories) and the kernel's vfio-dev numbering (a rebound device gets a new vfioN, as on
 * a real kernel) are left out, so "as it began" means every device, record, node and file.
 */
export function snapshotTree(root: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (dir: string) => {
    for (const name of fs.readdirSync(dir).sort()) {
      const abs = path.join(dir, name);
      const rel = path.relative(root, abs).replace(/vfio-dev\/vfio\d+/, 'vfio-dev/vfioN');
      if (rel === 'run/vfioctl/lock' || rel === 'run/vfioctl/lock.holder' || rel === 'run/vfioctl/journal.json') continue;
      const st = fs.lstatSync(abs);
      if (st.isSymbolicLink()) out.set(rel, `-> ${fs.readlinkSync(abs)}`);
      else if (st.isDirectory()) walk(abs);
      else out.set(rel, `${st.uid}:${st.gid} ${(st.mode & 0o7777).toString(8)} ${fs.readFileSync(abs, 'latin1')}`);
    }
  };
  walk(root);
  return out;
}

/** The paths whose entries differ between two snapshots (for a readable assertion message). */
export function treeDiff(a: Map<string, string>, b: Map<string, string>): string[] {
  const keys = new Set([...a.keys(), ...b.keys()]);
  return [...keys].filter((k) => a.get(k) !== b.get(k)).sort().map((k) => `${k}: ${JSON.stringify(a.get(k)?.slice(0, 60))} -> ${JSON.stringify(b.get(k)?.slice(0, 60))}`);
}
