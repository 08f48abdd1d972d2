import { notFound } from '../errors.js';
import type { Bdf } from '../model/address.js';
import { deviceOf, groupOf, isVfioBound } from '../model/host.js';
import type { Host } from '../model/types.js';
import { parseIdFile, resolveAccount, type Account } from '../provision/accounts.js';
import type { NodeState } from '../provision/grant-plan.js';
import type { FsRoot } from './fsroot.js';
import { DEV_VFIO } from './paths.js';
import { readVfioDevName } from './scan.js';

/** The VFIO nodes a grant concerns, as they are now: what grant's pure planner needs. */
export const DEV_IOMMU = '/dev/iommu';

function nodeState(fs: FsRoot, path: string, kind: NodeState['kind']): NodeState | undefined {
  const st = fs.stat(path);
  return st ? { path, kind, current: { uid: st.uid, gid: st.gid, mode: st.mode } } : undefined;
}

/** /dev/vfio/N, or /dev/vfio/noiommu-N for a noiommu group. */
function groupNodePath(fs: FsRoot, id: number): string | undefined {
  return [`${DEV_VFIO}/${id}`, `${DEV_VFIO}/noiommu-${id}`].find((p) => fs.lexists(p));
}

export function loadAccount(fs: FsRoot, kind: 'user' | 'group', text: string): Account {
  const file = kind === 'user' ? '/etc/passwd' : '/etc/group';
  return resolveAccount(kind, text, parseIdFile(fs.readText(file) ?? ''), file);
}

export interface GrantFacts {
  /** Nodes of the request: group nodes, the devices' cdevs, /dev/iommu when cdevs are in play. */
  readonly nodes: NodeState[];
  readonly groups: { id: number; node: string; devices: Bdf[] }[];
  /** VFIO nodes outside the request (whether /dev/iommu is still needed after a revoke). */
  readonly others: NodeState[];
}

export function grantFacts(fs: FsRoot, host: Host, selected: readonly Bdf[]): GrantFacts {
  const groupIds = [...new Set(selected.map((b) => {
    const id = deviceOf(host, b).iommuGroup;
    if (id === null) throw notFound(`device ${b}`, 'has no IOMMU group, so there is no VFIO group node to grant');
    return id;
  }))].sort((a, b) => a - b);
  const nodes: NodeState[] = [];
  const groups: GrantFacts['groups'] = [];
  for (const id of groupIds) {
    const path = groupNodePath(fs, id);
    if (!path) throw notFound(`${DEV_VFIO}/${id}`, `group ${id} has no VFIO node: none of its devices is bound to vfio-pci or a variant`, `bind it first: vfioctl bind group:${id}`);
    const n = nodeState(fs, path, 'group');
    if (!n) throw notFound(path, 'cannot be read');
    nodes.push(n);
    groups.push({ id, node: path, devices: [...(groupOf(host, id)?.devices ?? [])] });
  }
  for (const b of selected) {
    const x = isVfioBound(deviceOf(host, b)) ? readVfioDevName(fs, b) : null;
    const n = x ? nodeState(fs, `${DEV_VFIO}/devices/${x}`, 'device') : undefined;
    if (n) nodes.push(n);
  }
  const iommufd = nodeState(fs, DEV_IOMMU, 'iommufd');
  // iommufd is only useful with device cdevs; without them the legacy container (/dev/vfio/vfio, 0666) serves.
  if (iommufd && nodes.some((n) => n.kind === 'device')) nodes.push(iommufd);
  const requested = new Set(nodes.map((n) => n.path));
  const others = [...fs.list(DEV_VFIO).filter((n) => /^(noiommu-)?\d+$/.test(n)).map((n) => `${DEV_VFIO}/${n}`),
    ...fs.list(`${DEV_VFIO}/devices`).filter((n) => /^vfio\d+$/.test(n)).map((n) => `${DEV_VFIO}/devices/${n}`)]
    .filter((p) => !requested.has(p))
    .map((p) => nodeState(fs, p, p.includes('/devices/') ? 'device' : 'group'))
    .filter((n): n is NodeState => n !== undefined);
  return { nodes, groups, others };
}
