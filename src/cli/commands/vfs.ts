import type { Command } from 'commander';
import type { ActionResult } from '../../apply/binder.js';
import { runVfsChange } from '../../apply/vfs-change.js';
import { refused, usageError, VfioctlError } from '../../errors.js';
import { ExitCode } from '../../exit-codes.js';
import type { Bdf } from '../../model/address.js';
import { deviceOf } from '../../model/host.js';
import type { Host } from '../../model/types.js';
import { planBind } from '../../plan/bind-plan.js';
import { planVfs, vfsSteps } from '../../provision/vfs-plan.js';
import { chooseDrivers, hostUses, namedDriver, noiommuEnabled, vfioAliases, vfioFamilyDrivers } from '../../sysfs/bind-facts.js';
import { checkDriverOption } from '../../sysfs/modules.js';
import { devicePath } from '../../sysfs/paths.js';
import { scanHost } from '../../sysfs/scan.js';
import { resolveSelector } from '../../sysfs/selectors.js';
import { execOptions, withChange } from '../change.js';
import { openSession, type CliContext, type Session } from '../context.js';
import { renderVfs, vfsJson, type VfsReport } from '../render/vfs.js';
import { makeBinder, reportPlan } from '../run-plan.js';

interface VfsOptions {
  count: string;
  bind?: string;
  dryRun?: boolean;
}

export function registerVfs(program: Command, ctx: CliContext): void {
  program
    .command('vfs')
    .description('set the number of SR-IOV VFs of a PF (sriov_numvfs), optionally binding the new VFs to vfio; --count 0 removes them')
    .argument('<selector>', 'the PF: PCI address, interface or block device')
    .requiredOption('--count <n>', 'number of VFs (0 removes them)')
    .option('--bind <driver>', 'bind the VFs: auto, vfio-pci, or a variant driver name (host drivers are kept off them meanwhile)')
    .option('--dry-run', 'change nothing; show the writes')
    .option('--json', 'print JSON (see vfioctl(8), JSON OUTPUT)')
    .action(async (selector: string, opts: VfsOptions, cmd: Command) => {
      const s = openSession(ctx, cmd);
      if (!/^\d{1,6}$/.test(opts.count.trim())) throw usageError(`invalid --count "${opts.count.slice(0, 20)}"`, 'a count is a non-negative number');
      const bindTo = opts.bind?.trim();
      if (bindTo === '' || bindTo === 'host') throw usageError('--bind', 'name auto, vfio-pci or a variant driver', 'leave out --bind to let host drivers take the VFs');
      const bindName = bindTo === undefined || bindTo === 'auto' ? bindTo : checkDriverOption(bindTo, '--bind');
      const dryRun = opts.dryRun === true;
      await withChange(s, dryRun, () => runVfs(s, selector, Number(opts.count.trim()), bindName, dryRun));
    });
}

function vfBindPlan(s: Session, host: Host, vfs: Bdf[], bindTo: string) {
  const aliases = vfioAliases(s.fs, host);
  return planBind({
    host, selected: vfs, explicit: new Set(vfs), group: false, force: false,
    choices: chooseDrivers(s.fs, host, aliases, bindTo, vfs, []), uses: hostUses(s.fs, host, vfs),
    noiommu: noiommuEnabled(s.fs), vfioDrivers: vfioFamilyDrivers(s.fs, host, aliases),
  });
}

async function runVfs(s: Session, selector: string, count: number, bindTo: string | undefined, dryRun: boolean): Promise<void> {
  const host = scanHost(s.fs);
  const [pfBdf, ...more] = resolveSelector(s.fs, host, selector);
  if (!pfBdf || more.length) throw usageError(`"${selector.slice(0, 40)}"`, 'names more than one device; give the PF');
  const pf = deviceOf(host, pfBdf);
  if (pf.physfn) throw usageError(`${pfBdf}`, `is a VF of ${pf.physfn}; give the PF`);
  const autoprobeText = s.fs.read(`${devicePath(pfBdf)}/sriov_drivers_autoprobe`)?.trim();
  const autoprobe = autoprobeText === '0' ? 0 : autoprobeText === '1' ? 1 : null;
  const vfioSriov = /^[Y1]/.test(s.fs.read('/sys/module/vfio_pci/parameters/enable_sriov')?.trim() ?? '');
  const plan = planVfs(pf, count, bindTo !== undefined, autoprobe, vfioSriov);
  if (plan.refusal) {
    const code = plan.refusal.code === 'range' || plan.refusal.code === 'not-pf' ? ExitCode.USAGE : ExitCode.REFUSED;
    throw new VfioctlError(code, `vfs ${pfBdf}`, plan.refusal.reason, plan.refusal.code === 'no-driver' ? `bind the PF to its host driver first: vfioctl unbind ${pfBdf}` : undefined);
  }
  // VFs that are going away must not be in use (an open vfio VF would block the write).
  const busy = [...hostUses(s.fs, host, plan.destroys)].flatMap(([vf, uses]) => uses.filter((u) => u.code !== 'net-up').map((u) => `${vf}: ${u.detail}`));
  if (busy.length) throw refused(`vfs ${pfBdf}`, `would destroy VFs in use: ${busy.join('; ')}`, 'stop their users (the VMs) first; nothing was changed');

  // A driver that does not exist is found before any VF is created (exit 3), dry run or not.
  if (bindTo !== undefined && bindTo !== 'auto') namedDriver(s.fs, vfioAliases(s.fs, host), bindTo);
  const before = pf.sriovNumVfs ?? 0;
  const steps = vfsSteps(pfBdf, plan);
  const writes = [...steps.create, ...steps.finish].map((st) => ({ path: `${devicePath(pfBdf)}/${st.op === 'numvfs' ? 'sriov_numvfs' : 'sriov_drivers_autoprobe'}`, value: String((st as { value: number }).value) }));
  let actions: ActionResult[] = [];
  let failure: VfioctlError | undefined;
  let rollback: VfsReport['rollback'] = [];
  if (!dryRun) {
    const command = `vfs ${pfBdf} --count ${count}`;
    const { result: r, actions: done } = await runVfsChange({
      fs: s.fs, binder: makeBinder(s, command), exec: execOptions(s, command), pf: pfBdf, steps,
      bindPlan: bindTo !== undefined && count > 0 ? (now, vfs) => vfBindPlan(s, now, vfs, bindTo) : null,
    });
    actions = done;
    if (!r.ok) {
      rollback = r.subjects;
      const back = r.rolledBack ? `put back to ${before} VF(s) with autoprobe and the VFs' drivers as they were` : `NOT put back: ${r.subjects.filter((x) => x.status === 'rollback-failed').map((x) => `${x.id}: ${x.left} (fix: ${x.fix})`).join('; ')}`;
      failure = new VfioctlError(r.exitCode as 1, `vfs ${pfBdf}`, `${r.message}; ${back}`);
    }
  } else if (bindTo !== undefined && count > 0 && count === before) {
    actions = reportPlan(vfBindPlan(s, host, [...pf.virtfns], bindTo), true);
  }
  const after = scanHost(s.fs);
  const afterPf = deviceOf(after, pfBdf);
  const report: VfsReport = {
    dryRun,
    // Under --dry-run: whether a real run would change anything (as bind and apply report it).
    changed: dryRun ? plan.steps.length > 0 || actions.some((a) => a.status === 'planned') : (afterPf.sriovNumVfs ?? 0) !== before || actions.some((a) => a.status === 'bound') || (failure !== undefined && rollback.some((x) => x.status === 'rollback-failed')),
    pf: pfBdf, totalVfs: pf.sriovTotalVfs, numVfsBefore: before, numVfs: dryRun ? count : afterPf.sriovNumVfs,
    writes, vfs: afterPf.virtfns.map((b) => ({ bdf: b, driver: deviceOf(after, b).driver, iommuGroup: deviceOf(after, b).iommuGroup })),
    actions, rollback,
  };
  if (s.json) s.printJson(vfsJson(report));
  else s.print(renderVfs(report, s.chalk));
  if (failure) throw failure;
  const refusedInPlan = actions.filter((a) => a.status === 'refused');
  if (refusedInPlan.length) throw new VfioctlError(ExitCode.REFUSED, `vfs ${pfBdf}`, `binding would be refused: ${refusedInPlan.map((a) => `${a.bdf} (${a.reason})`).join('; ')}`);
}
