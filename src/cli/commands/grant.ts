import type { Command } from 'commander';
import { notFound, usageError, VfioctlError } from '../../errors.js';
import { ExitCode } from '../../exit-codes.js';
import { deviceOf, groupOf, isVfioBound } from '../../model/host.js';
import type { Bdf } from '../../model/address.js';
import { parseIdFile, resolveAccount, type Account } from '../../provision/accounts.js';
import { formatMode, planGrant, type NodeState, type NodeStep } from '../../provision/grant-plan.js';
import type { FsRoot } from '../../sysfs/fsroot.js';
import { DEV_VFIO } from '../../sysfs/paths.js';
import { readVfioDevName, scanHost } from '../../sysfs/scan.js';
import { resolveSelector } from '../../sysfs/selectors.js';
import { openSession, type CliContext } from '../context.js';

interface GrantOptions {
  user?: string;
  group?: string;
  revoke?: boolean;
  dryRun?: boolean;
}

const DEV_IOMMU = '/dev/iommu';

function nodeState(fs: FsRoot, path: string, kind: NodeState['kind']): NodeState | undefined {
  const st = fs.stat(path);
  return st ? { path, kind, current: { uid: st.uid, gid: st.gid, mode: st.mode } } : undefined;
}

/** /dev/vfio/N, or /dev/vfio/noiommu-N for a noiommu group. */
function groupNodePath(fs: FsRoot, id: number): string | undefined {
  return [`${DEV_VFIO}/${id}`, `${DEV_VFIO}/noiommu-${id}`].find((p) => fs.lexists(p));
}

function loadAccount(fs: FsRoot, kind: 'user' | 'group', text: string): Account {
  const file = kind === 'user' ? '/etc/passwd' : '/etc/group';
  return resolveAccount(kind, text, parseIdFile(fs.readText(file) ?? ''), file);
}

const own = (o: { uid: number; gid: number; mode: number }) => `${o.uid}:${o.gid} ${formatMode(o.mode)}`;

export function registerGrant(program: Command, ctx: CliContext): void {
  program
    .command('grant')
    .description("give a user access to a device's VFIO group node (/dev/vfio/N), its device node and /dev/iommu; --revoke takes it back")
    .argument('<selector>', 'PCI address, VENDOR:DEVICE, group:N, interface or block device')
    .option('--user <user>', 'user name or uid to own the nodes')
    .option('--group <group>', 'also give this group read-write access (mode 0660)')
    .option('--revoke', 'restore root:root 0600 (the kernel default)')
    .option('--dry-run', 'show the ownership changes without making them')
    .option('--json', 'print JSON (see vfioctl(8), JSON OUTPUT)')
    .action((selector: string, opts: GrantOptions, cmd: Command) => {
      const s = openSession(ctx, cmd);
      if (!opts.revoke && opts.user === undefined) throw usageError('grant', '--user is required', 'vfioctl grant SELECTOR --user NAME [--group NAME]');
      if (opts.revoke && opts.group !== undefined) throw usageError('grant --revoke', '--group has no meaning when revoking');
      const user = opts.user === undefined ? null : loadAccount(s.fs, 'user', opts.user);
      const group = opts.group === undefined ? null : loadAccount(s.fs, 'group', opts.group);

      const host = scanHost(s.fs);
      const selected = resolveSelector(s.fs, host, selector, { ids: true, groups: true });
      const groupIds = [...new Set(selected.map((b) => {
        const id = deviceOf(host, b).iommuGroup;
        if (id === null) throw notFound(`device ${b}`, 'has no IOMMU group, so there is no VFIO group node to grant');
        return id;
      }))].sort((a, b) => a - b);

      const nodes: NodeState[] = [];
      const groups: { id: number; node: string; devices: Bdf[] }[] = [];
      for (const id of groupIds) {
        const path = groupNodePath(s.fs, id);
        if (!path) throw notFound(`${DEV_VFIO}/${id}`, `group ${id} has no VFIO node: none of its devices is bound to vfio-pci or a variant`, `bind it first: vfioctl bind group:${id}`);
        nodes.push(nodeState(s.fs, path, 'group')!);
        groups.push({ id, node: path, devices: [...(groupOf(host, id)?.devices ?? [])] });
      }
      for (const b of selected) {
        const x = isVfioBound(deviceOf(host, b)) ? readVfioDevName(s.fs, b) : null;
        const n = x ? nodeState(s.fs, `${DEV_VFIO}/devices/${x}`, 'device') : undefined;
        if (n) nodes.push(n);
      }
      const iommufd = nodeState(s.fs, DEV_IOMMU, 'iommufd');
      // iommufd is only useful with device cdevs; without them the legacy container (/dev/vfio/vfio, 0666) serves.
      if (iommufd && nodes.some((n) => n.kind === 'device')) nodes.push(iommufd);

      const requested = new Set(nodes.map((n) => n.path));
      const others = [...s.fs.list(DEV_VFIO).filter((n) => /^(noiommu-)?\d+$/.test(n)).map((n) => `${DEV_VFIO}/${n}`),
        ...s.fs.list(`${DEV_VFIO}/devices`).map((n) => `${DEV_VFIO}/devices/${n}`)]
        .filter((p) => !requested.has(p))
        .map((p) => nodeState(s.fs, p, p.includes('/devices/') ? 'device' : 'group'))
        .filter((n): n is NodeState => n !== undefined);
      const plan = planGrant(nodes, { revoke: opts.revoke === true, uid: user?.id ?? null, gid: group?.id ?? null }, others);

      const warnings = [...plan.warnings];
      if (!opts.revoke) {
        for (const g of groups) {
          const extra = g.devices.filter((b) => !selected.includes(b));
          warnings.push(`${g.node} gives ${user!.name} every device of IOMMU group ${g.id}: ${g.devices.join(', ')}${extra.length ? ` (not only ${selected.filter((b) => g.devices.includes(b)).join(', ')})` : ''}`);
        }
        warnings.push('the grant lasts until the node is re-created (unbinding the whole group, or a reboot)');
      }

      const results: (NodeStep & { verified: boolean | null })[] = [];
      for (const step of plan.steps) {
        if (!opts.dryRun && step.changed) {
          s.fs.chown(step.path, step.after.uid, step.after.gid);
          s.fs.chmod(step.path, step.after.mode);
        }
        results.push({ ...step, verified: null });
      }
      if (!opts.dryRun) {
        for (const r of results) {
          const st = s.fs.stat(r.path);
          r.verified = st !== undefined && st.uid === r.after.uid && st.gid === r.after.gid && st.mode === r.after.mode;
        }
      }
      // As bind and apply: under --dry-run, whether a real run would change anything.
      const changed = results.some((r) => r.changed);

      for (const w of warnings) s.warn(w);
      if (s.json) {
        s.printJson({
          changed,
          dryRun: opts.dryRun === true,
          revoke: opts.revoke === true,
          user: user ? { name: user.name, uid: user.id } : null,
          group: group ? { name: group.name, gid: group.id } : null,
          iommuGroups: groups.map((g) => ({ id: g.id, node: g.node, devices: g.devices })),
          nodes: results.map((r) => ({ path: r.path, kind: r.kind, before: { uid: r.before.uid, gid: r.before.gid, mode: formatMode(r.before.mode) }, after: { uid: r.after.uid, gid: r.after.gid, mode: formatMode(r.after.mode) }, changed: r.changed, verified: r.verified })),
          warnings,
        });
      } else {
        const verb = opts.dryRun ? 'would set' : 'set';
        for (const r of results) s.print(r.changed ? `${verb} ${r.path}: ${own(r.before)} -> ${own(r.after)}` : `${r.path}: already ${own(r.after)}`);
      }
      const bad = results.filter((r) => r.verified === false);
      if (bad.length) {
        throw new VfioctlError(ExitCode.FAILURE, 'grant', `ownership did not stick on ${bad.map((r) => r.path).join(', ')}`, 'a device manager (udev) may have reset it; check with ls -l');
      }
    });
}
