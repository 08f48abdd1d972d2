import type { Command } from 'commander';
import type { ActionResult } from '../../apply/binder.js';
import { VfioctlError, refused, usageError } from '../../errors.js';
import { ExitCode } from '../../exit-codes.js';
import type { Bdf } from '../../model/address.js';
import { deviceOf } from '../../model/host.js';
import type { Host } from '../../model/types.js';
import { planBind } from '../../plan/bind-plan.js';
import { planVfs, type VfStep } from '../../provision/vfs-plan.js';
import { hostUseChecker, type HostUse } from '../../sysfs/in-use.js';
import { readVfioAliases } from '../../sysfs/modules.js';
import { devicePath } from '../../sysfs/paths.js';
import { scanHost } from '../../sysfs/scan.js';
import { resolveSelector } from '../../sysfs/selectors.js';
import { openSession, type CliContext, type Session } from '../context.js';
import { actionJson, renderActions } from '../render/bind.js';
import { chooseDrivers, makeBinder, noiommuEnabled, reportPlan, vfioFamilyDrivers, withLock } from './bind.js';

interface VfsOptions {
  count: string;
  bind?: string;
  dryRun?: boolean;
}

const stepPath = (pf: Bdf, step: VfStep) => `${devicePath(pf)}/${step.op === 'numvfs' ? 'sriov_numvfs' : 'sriov_drivers_autoprobe'}`;

function vfView(host: Host, bdf: Bdf) {
  const d = deviceOf(host, bdf);
  return { bdf, driver: d.driver, iommuGroup: d.iommuGroup };
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
      if (!/^\d+$/.test(opts.count.trim())) throw usageError(`invalid --count "${opts.count}"`, 'a count is a non-negative number');
      const count = Number(opts.count.trim());
      const bindTo = opts.bind?.trim();
      if (bindTo === '' || bindTo === 'host') throw usageError('--bind', 'name auto, vfio-pci or a variant driver', 'leave out --bind to let host drivers take the VFs');
      const dryRun = opts.dryRun === true;
      await withLock(s, dryRun, () => runVfs(s, selector, count, bindTo, dryRun));
    });
}

async function runVfs(s: Session, selector: string, count: number, bindTo: string | undefined, dryRun: boolean): Promise<void> {
  let host = scanHost(s.fs);
  const [pfBdf, ...more] = resolveSelector(s.fs, host, selector);
  if (!pfBdf || more.length) throw usageError(`"${selector}"`, 'names more than one device; give the PF');
  const pf = deviceOf(host, pfBdf);
  if (pf.physfn) throw usageError(`${pfBdf}`, `is a VF of ${pf.physfn}; give the PF`);
  const autoprobeText = s.fs.read(`${devicePath(pfBdf)}/sriov_drivers_autoprobe`)?.trim();
  const autoprobe = autoprobeText === '0' ? 0 : autoprobeText === '1' ? 1 : null;
  const vfioSriov = /^[Y1]/.test(s.fs.read('/sys/module/vfio_pci/parameters/enable_sriov')?.trim() ?? '');
  const plan = planVfs(pf, count, bindTo !== undefined, autoprobe, vfioSriov);
  if (plan.refusal) {
    const code = plan.refusal.code === 'range' || plan.refusal.code === 'not-pf' ? ExitCode.USAGE : ExitCode.REFUSED;
    throw new VfioctlError(code, `vfs ${pfBdf}`, plan.refusal.reason, plan.refusal.code === 'no-driver' ? 'bind the PF to its host driver first' : undefined);
  }
  // VFs that are going away must not be in use (an open vfio VF would block the write).
  const check = hostUseChecker(s.fs, host);
  const busy = plan.destroys.flatMap((vf) => check(vf).filter((u) => u.code !== 'net-up').map((u) => `${vf}: ${u.detail}`));
  if (busy.length) throw refused(`vfs ${pfBdf}`, `would destroy VFs in use: ${busy.join('; ')}`, 'stop their users first; nothing was changed');

  const before = pf.sriovNumVfs ?? 0;
  const writes = plan.steps.map((st) => ({ path: stepPath(pfBdf, st), value: String(st.value) }));
  let actions: ActionResult[] = [];
  let failure: VfioctlError | undefined;
  if (!dryRun) {
    const restoreAutoprobe = plan.steps.some((st) => st.op === 'autoprobe');
    try {
      for (const st of plan.steps.filter((x) => !(x.op === 'autoprobe' && x.value === 1))) {
        s.fs.write(stepPath(pfBdf, st), String(st.value));
        // sriov_numvfs is checked below with the VF links; autoprobe is checked here.
        if (st.op === 'autoprobe') expectAttr(s, stepPath(pfBdf, st), String(st.value));
      }
      host = scanHost(s.fs);
      const now = deviceOf(host, pfBdf);
      if ((now.sriovNumVfs ?? 0) !== count || now.virtfns.length !== count) {
        throw new VfioctlError(ExitCode.FAILURE, `vfs ${pfBdf}`, `sriov_numvfs reads ${now.sriovNumVfs ?? '?'} with ${now.virtfns.length} VF links after writing ${count}`);
      }
      if (bindTo !== undefined && count > 0) {
        actions = await bindVfs(s, host, [...now.virtfns], bindTo);
        const bad = actions.filter((a) => a.status === 'failed' || a.status === 'refused');
        if (bad.length) {
          const code = bad.every((a) => a.status === 'refused') ? ExitCode.REFUSED : ExitCode.FAILURE;
          throw new VfioctlError(code, `vfs ${pfBdf}`, `${bad.length} new VF(s) could not be bound: ${bad.map((a) => `${a.bdf} (${a.reason})`).join('; ')}`);
        }
      }
    } catch (err) {
      if (!(err instanceof VfioctlError)) throw err;
      // Nothing half-done: the PF goes back to the VF count it had.
      const problem = restoreVfCount(s, pfBdf, before);
      failure = new VfioctlError(err.code, err.what, `${err.why}; ${problem ?? `put back to ${before} VF(s)`}`, err.hint);
    } finally {
      // Autoprobe goes back on whatever happened, so later VFs behave as before.
      if (restoreAutoprobe) {
        s.fs.write(`${devicePath(pfBdf)}/sriov_drivers_autoprobe`, '1');
        if (s.fs.read(`${devicePath(pfBdf)}/sriov_drivers_autoprobe`)?.trim() !== '1') {
          s.warn(`${pfBdf}: sriov_drivers_autoprobe does not read 1 after restoring it; new VFs will not probe host drivers`);
        }
      }
    }
  } else if (bindTo !== undefined && count > 0 && count === before) {
    actions = reportPlan(vfBindPlan(s, host, [...pf.virtfns], bindTo), true);
  }
  host = scanHost(s.fs);
  const after = deviceOf(host, pfBdf);
  // Under --dry-run: whether a real run would change anything (as bind and apply report it).
  const changed = plan.steps.length > 0 || actions.some((a) => a.status === 'bound' || a.status === 'planned');
  const vfs = after.virtfns.map((b) => vfView(host, b));
  if (s.json) {
    s.printJson({ dryRun, changed, pf: pfBdf, totalVfs: pf.sriovTotalVfs, numVfsBefore: before, numVfs: dryRun ? count : after.sriovNumVfs, writes, vfs, actions: actions.map(actionJson) });
  } else {
    for (const w of writes) s.print(`${dryRun ? 'would write' : 'wrote'} ${JSON.stringify(w.value)} > ${w.path}`);
    s.print(`${pfBdf}: ${before} -> ${dryRun ? count : after.sriovNumVfs} VFs (of ${pf.sriovTotalVfs})`);
    for (const v of vfs) s.print(`  ${v.bdf} ${v.driver ?? '(no driver)'} group ${v.iommuGroup ?? '-'}`);
    if (actions.length) s.print(renderActions(actions, dryRun, changed, s.chalk));
  }
  if (failure) throw failure;
  const refusedInPlan = actions.filter((a) => a.status === 'refused');
  if (refusedInPlan.length) throw new VfioctlError(ExitCode.REFUSED, `vfs ${pfBdf}`, `binding would be refused: ${refusedInPlan.map((a) => `${a.bdf} (${a.reason})`).join('; ')}`);
}

/** Read an attribute back after writing it: the kernel accepts some writes that change nothing. */
function expectAttr(s: Session, path: string, want: string): void {
  const now = s.fs.read(path)?.trim();
  if (now !== want) throw new VfioctlError(ExitCode.FAILURE, `${path}`, `reads "${now ?? '(unreadable)'}" after writing "${want}"`);
}

/** Put sriov_numvfs back after a failure part-way; returns what could not be restored, or null. */
function restoreVfCount(s: Session, pf: Bdf, before: number): string | null {
  const numvfs = `${devicePath(pf)}/sriov_numvfs`;
  const read = () => Number.parseInt(s.fs.read(numvfs) ?? '', 10);
  try {
    if (read() === before) return null;
    if (read() !== 0) s.fs.write(numvfs, '0'); // non-zero to non-zero is EBUSY
    if (before > 0) s.fs.write(numvfs, String(before));
  } catch (err) {
    return `could not put the VF count back to ${before}: ${err instanceof VfioctlError ? err.why : String(err)}`;
  }
  const now = read();
  return now === before ? null : `sriov_numvfs reads ${now} instead of ${before} after restoring`;
}

function vfBindPlan(s: Session, host: Host, vfs: Bdf[], bindTo: string) {
  const aliases = readVfioAliases(s.fs, host.kernelRelease).aliases;
  const check = hostUseChecker(s.fs, host);
  const uses = new Map<Bdf, HostUse[]>(vfs.map((b) => [b, check(b)]));
  return planBind({
    host, selected: vfs, explicit: new Set(vfs), group: false, force: false,
    choices: chooseDrivers(s.fs, host, aliases, bindTo, vfs, []), uses,
    noiommu: noiommuEnabled(s.fs), vfioDrivers: vfioFamilyDrivers(s.fs, host, aliases),
  });
}

async function bindVfs(s: Session, host: Host, vfs: Bdf[], bindTo: string): Promise<ActionResult[]> {
  const plan = vfBindPlan(s, host, vfs, bindTo);
  if (plan.refused || !plan.changes) return reportPlan(plan, false);
  return (await makeBinder(s).apply(plan)).actions;
}
