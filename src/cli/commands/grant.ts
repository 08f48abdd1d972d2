import type { Command } from 'commander';
import { execute } from '../../exec/executor.js';
import { usageError, VfioctlError } from '../../errors.js';
import { planGrant } from '../../provision/grant-plan.js';
import { grantFacts, loadAccount } from '../../sysfs/grant-facts.js';
import { scanHost } from '../../sysfs/scan.js';
import { resolveSelector } from '../../sysfs/selectors.js';
import { execOptions, withChange } from '../change.js';
import { openSession, type CliContext } from '../context.js';
import { grantJson, renderGrant, type GrantReport } from '../render/grant.js';

interface GrantOptions {
  user?: string;
  group?: string;
  revoke?: boolean;
  dryRun?: boolean;
}

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
    .action(async (selector: string, opts: GrantOptions, cmd: Command) => {
      const s = openSession(ctx, cmd);
      if (!opts.revoke && opts.user === undefined) throw usageError('grant', '--user is required', 'vfioctl grant SELECTOR --user NAME [--group NAME]');
      if (opts.revoke && opts.group !== undefined) throw usageError('grant --revoke', '--group has no meaning when revoking');
      const user = opts.user === undefined ? null : loadAccount(s.fs, 'user', opts.user);
      const group = opts.group === undefined ? null : loadAccount(s.fs, 'group', opts.group);
      const dryRun = opts.dryRun === true;
      await withChange(s, dryRun, async () => {
        const host = scanHost(s.fs);
        const selected = resolveSelector(s.fs, host, selector, { ids: true, groups: true });
        const facts = grantFacts(s.fs, host, selected);
        const plan = planGrant(facts.nodes, { revoke: opts.revoke === true, uid: user?.id ?? null, gid: group?.id ?? null }, facts.others);
        const warnings = [...plan.warnings];
        if (!opts.revoke) {
          for (const g of facts.groups) {
            const extra = g.devices.filter((b) => !selected.includes(b));
            warnings.push(`${g.node} gives ${user!.name} every device of IOMMU group ${g.id}: ${g.devices.join(', ')}${extra.length ? ` (not only ${selected.filter((b) => g.devices.includes(b)).join(', ')})` : ''}`);
          }
          warnings.push('the grant lasts until the node is re-created (unbinding the whole group, or a reboot)');
        }
        const changes = plan.steps.filter((st) => st.changed).map((st) => ({ op: 'owner' as const, path: st.path, ...st.after }));
        const r = dryRun || changes.length === 0 ? null
          : await execute({ ...execOptions(s, `grant ${selector}`), fs: s.fs }, (tx) => tx.run(changes));
        const report: GrantReport = {
          changed: r ? !r.ok ? !r.rolledBack : true : dryRun && changes.length > 0,
          dryRun, revoke: opts.revoke === true,
          user: user ? { name: user.name, uid: user.id } : null,
          group: group ? { name: group.name, gid: group.id } : null,
          iommuGroups: facts.groups,
          // The executor read every changed node back; a failed run reads none as granted.
          nodes: plan.steps.map((st) => ({ ...st, verified: dryRun ? null : r === null || r.ok })),
          warnings,
          rollback: r && !r.ok ? r.subjects : [],
        };
        for (const w of warnings) s.warn(w);
        if (s.json) s.printJson(grantJson(report));
        else s.print(renderGrant(report));
        if (r && !r.ok) {
          throw new VfioctlError(r.exitCode as 1, 'grant', r.message, r.rolledBack ? 'every node changed in this run was put back; a device manager (udev) may be resetting ownership: check with ls -l' : 'see the rollback lines for what is left and the fix');
        }
      });
    });
}
