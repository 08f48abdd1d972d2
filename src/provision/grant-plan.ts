/**
 * Who may open a VFIO node: a pure plan from the nodes' current owners to the wanted ones.
 * The group node /dev/vfio/N hands out every member of the group; the device cdev and
 * /dev/iommu (iommufd) are needed for the cdev interface (6.6+).
 */
export interface Ownership {
  readonly uid: number;
  readonly gid: number;
  /** Permission bits. */
  readonly mode: number;
}

export interface NodeState {
  /** In-root path. */
  readonly path: string;
  readonly kind: 'group' | 'device' | 'iommufd';
  readonly current: Ownership;
}

export interface NodeStep {
  readonly path: string;
  readonly kind: NodeState['kind'];
  readonly before: Ownership;
  readonly after: Ownership;
  readonly changed: boolean;
}

export interface GrantRequest {
  readonly revoke: boolean;
  /** The user granted (or, with revoke, the user whose grant ends; may be absent). */
  readonly uid: number | null;
  /** Extra group that shares access (mode 0660); null keeps the node group-private. */
  readonly gid: number | null;
}

/** Kernel defaults: vfio group and device nodes 0600, iommufd 0660, both root:root. */
export const ROOT_ONLY: Ownership = { uid: 0, gid: 0, mode: 0o600 };
export const IOMMUFD_DEFAULT: Ownership = { uid: 0, gid: 0, mode: 0o660 };

const same = (a: Ownership, b: Ownership) => a.uid === b.uid && a.gid === b.gid && a.mode === b.mode;

export interface GrantPlan {
  readonly steps: NodeStep[];
  readonly warnings: string[];
}

/**
 * Plan the ownership changes. `otherNodes` are VFIO nodes outside the request, used to decide
 * whether /dev/iommu is still needed by the user after a revoke (it is shared by every grant).
 */
export function planGrant(nodes: readonly NodeState[], req: GrantRequest, otherNodes: readonly NodeState[] = []): GrantPlan {
  const steps: NodeStep[] = [];
  const warnings: string[] = [];
  for (const n of nodes) {
    let after: Ownership;
    if (!req.revoke) {
      const uid = req.uid ?? 0;
      after = req.gid === null ? { uid, gid: 0, mode: 0o600 } : { uid, gid: req.gid, mode: 0o660 };
      if (n.kind === 'iommufd' && n.current.uid !== 0 && n.current.uid !== uid) {
        warnings.push(`${n.path} belonged to uid ${n.current.uid}; it is shared by every VFIO user, so that user loses iommufd access (use a shared --group for several users)`);
      }
    } else if (n.kind === 'iommufd') {
      const stillGranted = otherNodes.some((o) => o.kind !== 'iommufd' && o.current.uid === n.current.uid && n.current.uid !== 0);
      if (stillGranted || (req.uid !== null && n.current.uid !== req.uid && n.current.uid !== 0)) {
        warnings.push(`${n.path} left as is: uid ${n.current.uid} still holds other VFIO nodes`);
        continue;
      }
      after = IOMMUFD_DEFAULT;
    } else {
      after = ROOT_ONLY;
    }
    steps.push({ path: n.path, kind: n.kind, before: n.current, after, changed: !same(n.current, after) });
  }
  return { steps, warnings };
}

export const formatMode = (m: number) => m.toString(8).padStart(4, '0');
