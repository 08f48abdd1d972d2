import type { SubjectOutcome } from '../../exec/executor.js';
import { formatMode, type NodeStep } from '../../provision/grant-plan.js';
import { rollbackJson } from './bind.js';

export interface GrantReport {
  readonly changed: boolean;
  readonly dryRun: boolean;
  readonly revoke: boolean;
  readonly user: { name: string; uid: number } | null;
  readonly group: { name: string; gid: number } | null;
  readonly iommuGroups: readonly { id: number; node: string; devices: readonly string[] }[];
  readonly nodes: readonly (NodeStep & { verified: boolean | null })[];
  readonly warnings: readonly string[];
  readonly rollback: readonly SubjectOutcome[];
}

const own = (o: { uid: number; gid: number; mode: number }) => `${o.uid}:${o.gid} ${formatMode(o.mode)}`;

/** `grant --json` (schemaVersion 1); `rollback` only after a failed change. */
export function grantJson(r: GrantReport) {
  return {
    changed: r.changed, dryRun: r.dryRun, revoke: r.revoke, user: r.user, group: r.group,
    iommuGroups: r.iommuGroups.map((g) => ({ id: g.id, node: g.node, devices: [...g.devices] })),
    nodes: r.nodes.map((n) => ({ path: n.path, kind: n.kind, before: { uid: n.before.uid, gid: n.before.gid, mode: formatMode(n.before.mode) }, after: { uid: n.after.uid, gid: n.after.gid, mode: formatMode(n.after.mode) }, changed: n.changed, verified: n.verified })),
    warnings: [...r.warnings],
    ...(r.rollback.length ? { rollback: rollbackJson(r.rollback) } : {}),
  };
}

export function renderGrant(r: GrantReport): string {
  const verb = r.dryRun ? 'would set' : 'set';
  const lines = r.nodes.map((n) => (n.changed ? `${verb} ${n.path}: ${own(n.before)} -> ${own(n.after)}` : `${n.path}: already ${own(n.after)}`));
  for (const x of r.rollback) lines.push(x.status === 'rolled-back' ? `${x.id}: put back` : `${x.id}: NOT put back: ${x.left}; fix: ${x.fix}`);
  return lines.join('\n');
}
