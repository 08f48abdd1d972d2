import type { ChalkInstance } from 'chalk';
import type { Bdf } from '../../model/address.js';
import type { AffectedDevice, HotResetPlan, ResetPlan, ResetPlans, SetAnalysis, SetReset } from '../../plan/reset-plan.js';
import type { IommufdAnswer } from '../../plan/iommufd-reset.js';
import type { HostUse } from '../../sysfs/in-use.js';
import { columns, stripAnsi } from './table.js';
import type { PlanCheck } from '../verify-plans.js';
import type { KernelAnswer } from '../../vfio/verify.js';

/** How the host uses a device, with stable codes (in-use findings, as `bind` checks them). */
export type FindingsOf = (bdf: Bdf) => readonly HostUse[];

/**
 * The JSON document of `reset-plan --json`: an explicit mapping of the documented fields
 * (vfioctl(8), JSON OUTPUT; schema/reset-plan.schema.json), so refactoring the planner's
 * types cannot move the contract. Fields may be added, never renamed or dropped.
 */
export function resetPlansJson(r: ResetPlans, findings: FindingsOf = () => []): Record<string, unknown> {
  return {
    plans: r.plans.map((p) => planJson(p, findings)),
    slotNumbering: { reading: r.slotReading.reading, kernelRelease: r.slotReading.kernelRelease, assumed: r.slotReading.assumed, text: r.slotReading.text },
    order: 'affected devices are listed in devfn order per bus (VFs after the other functions); the kernel list can differ after hotplug or rescan',
    ...(r.set ? { set: setJson(r.set) } : {}),
  };
}

function planJson(p: ResetPlan, findings: FindingsOf) {
  return {
    device: p.device,
    group: p.group,
    resetMethods: [...p.resetMethods],
    resetMethodKnown: p.resetMethodKnown,
    functionReset: p.functionReset,
    functionResetMethods: [...p.functionResetMethods],
    hotReset: hotResetJson(p.hotReset, findings),
  };
}

function hotResetJson(h: HotResetPlan, findings: FindingsOf) {
  return {
    scope: h.scope,
    reason: h.reason,
    reasonCode: h.reasonCode,
    bridge: h.bridge,
    slot: h.slot,
    affected: h.affected.map((a) => affectedJson(a, findings)),
    groups: [...h.groups],
    ready: h.ready,
    blockers: h.blockers.map((b) => ({ bdf: b.bdf, code: b.code, reason: b.reason })),
    change: h.change,
    changeCode: h.changeCode,
    impossible: h.impossible,
    iommufd: iommufdJson(h.iommufd),
  };
}

/** hotReset.iommufd: the empty-group-list reset through one iommufd context (vfioctl(8), HOT RESET WITH IOMMUFD). */
function iommufdJson(a: IommufdAnswer) {
  return {
    available: a.available,
    unavailableReason: a.unavailableReason,
    open: [...a.open],
    ready: a.ready,
    ownedFlag: a.ownedFlag,
    info: a.info.map((i) => ({ bdf: i.bdf, devId: i.devId })),
    blockers: a.blockers.map((b) => ({ bdf: b.bdf, code: b.code, reason: b.reason })),
  };
}

function affectedJson(a: AffectedDevice, findings: FindingsOf) {
  return {
    bdf: a.bdf,
    group: a.group,
    driver: a.driver,
    bridge: a.bridge,
    inUse: a.inUse,
    inUseBy: [...a.inUseBy],
    inUseFindings: findings(a.bdf).map((u) => ({ code: u.code, detail: u.detail })),
    vf: a.vf,
    vfio: a.vfio,
  };
}

function setResetJson(r: SetReset) {
  return {
    callers: [...r.callers],
    scope: r.scope,
    bridge: r.bridge,
    slot: r.slot,
    affected: [...r.affected],
    groups: [...r.groups],
    possible: r.possible,
    byItself: r.byItself,
    outsideGroups: [...r.outsideGroups],
    outsideDevices: [...r.outsideDevices],
    ready: r.ready,
    reason: r.reason,
    reasonCode: r.reasonCode,
    iommufd: { ...iommufdJson(r.iommufd), outsideDevices: [...r.iommufd.outsideDevices] },
  };
}

function setJson(s: SetAnalysis) {
  return {
    devices: [...s.devices],
    groups: [...s.groups],
    resets: s.resets.map(setResetJson),
    byItself: [...s.byItself],
    needOutside: s.needOutside.map((n) => ({ device: n.device, groups: [...n.groups], devices: [...n.devices] })),
    impossible: s.impossible.map((i) => ({ device: i.device, reason: i.reason, code: i.code })),
    assumption: s.assumption,
  };
}

const yesNo = (c: ChalkInstance, ok: boolean, yes = 'yes', no = 'no') => (ok ? c.green(yes) : c.red(no));

function renderPlan(p: ResetPlan, c: ChalkInstance): string {
  const h = p.hotReset;
  const out: string[] = [];
  out.push(`${c.bold(p.device)}  group ${p.group ?? '(none)'}`);
  const methods = p.resetMethodKnown ? p.resetMethods.join(' ') || '(all disabled)' : '(no reset_method file)';
  out.push(`  reset methods:  ${methods}`);
  out.push(`  function reset: ${p.functionReset ? c.green(`yes (${p.functionResetMethods.join(', ')})`) + ': vfio-pci resets it alone on open and close' : c.yellow('no')}`);
  out.push(`  hot reset:      ${c.bold(h.scope)}${h.slot ? ` (slot ${h.slot})` : ''}${h.bridge ? ` below ${h.bridge}` : ''}`);
  out.push(`  why:            ${h.reason}`);
  if (h.affected.length) {
    const rows = [['AFFECTED', 'GROUP', 'DRIVER', 'NOTE'].map((x) => c.bold(x))];
    for (const a of h.affected) {
      const notes = [a.bridge ? 'bridge' : '', a.vf ? 'VF' : '', a.inUse ? `in use${a.inUseBy.length ? ': ' + a.inUseBy.join('; ') : ''}` : ''].filter(Boolean);
      rows.push([a.bdf, a.group === null ? '-' : String(a.group), a.vfio ? c.green(a.driver ?? '-') : a.driver ?? '-', notes.join(', ')]);
    }
    out.push(columns(rows, 2, (s) => stripAnsi(s).length).split('\n').map((l) => '    ' + l).join('\n'));
    out.push(`  groups to own:  ${h.groups.join(', ') || '(none)'}`);
  }
  out.push(`  ready:          ${yesNo(c, h.ready, 'yes: VFIO_DEVICE_PCI_HOT_RESET can succeed', 'no')}`);
  for (const b of h.blockers) out.push(`    - ${b.bdf}: ${b.reason}`);
  if (h.change) out.push(`  to change:      ${h.change}`);
  out.push(`  iommufd:        ${iommufdLine(h.iommufd, c)}`);
  if (h.iommufd.available) for (const b of h.iommufd.blockers.filter((x) => !h.blockers.some((y) => y.bdf === x.bdf && y.code === x.code))) out.push(`    - ${b.bdf}: ${b.reason}`);
  return out.join('\n');
}

function iommufdLine(a: IommufdAnswer, c: ChalkInstance): string {
  if (!a.available) return c.dim(`unavailable: ${a.unavailableReason}`);
  if (a.open.length === 0) return c.red('no: INFO fails with ENODEV');
  const info = a.info.map((i) => `${i.bdf} ${i.devId}`).join(', ');
  return `${a.ready ? c.green('ready') : c.red('not ready')} with an empty group list once ${a.open.join(', ')} ${a.open.length === 1 ? 'is' : 'are'} bound to one iommufd context; INFO: ${info}; DEV_ID_OWNED ${a.ownedFlag ? 'set' : 'not set'}`;
}

function renderSet(s: SetAnalysis, c: ChalkInstance): string {
  const out = [c.bold(`As one VM's set (${s.devices.join(', ')}; groups ${s.groups.join(', ') || 'none'}):`)];
  for (const r of s.resets) {
    if (r.scope === 'none') {
      out.push(`  ${r.callers.join(', ')}: ${c.red(r.reason)}`);
      continue;
    }
    const what = `${r.scope} reset${r.slot ? ` of slot ${r.slot}` : ''}${r.bridge ? ` below ${r.bridge}` : ''} (${r.affected.length} device${r.affected.length === 1 ? '' : 's'})`;
    let verdict: string;
    if (!r.possible) verdict = c.red('impossible: ') + r.reason;
    else if (r.byItself) verdict = c.green('the set can do it by itself') + (r.ready ? '' : ' once its groups are bound to vfio-pci');
    else verdict = c.yellow(`needs group${r.outsideGroups.length === 1 ? '' : 's'} outside the set: ${r.outsideGroups.join(', ') || '(devices without a group)'}`) + (r.outsideDevices.length ? ` (${r.outsideDevices.join(', ')})` : '');
    out.push(`  ${r.callers.join(', ')}: ${what}: ${verdict}`);
    if (r.iommufd.available) out.push(`    iommufd: ${r.iommufd.ready ? c.green('ready') : c.red('not ready')}, binding ${r.iommufd.open.join(', ') || '(nothing)'}${r.iommufd.outsideDevices.length ? c.yellow(` (outside the set: ${r.iommufd.outsideDevices.join(', ')})`) : ''}`);
  }
  out.push(c.dim(`  assumes ${s.assumption}`));
  return out.join('\n');
}

export function renderResetPlans(r: ResetPlans, c: ChalkInstance): string {
  const parts = r.plans.map((p) => renderPlan(p, c));
  if (r.set) parts.push(renderSet(r.set, c));
  if (r.plans.some((p) => p.hotReset.slot !== null || /pciehp/.test(p.hotReset.reason))) parts.push(c.dim(`slot numbering: ${r.slotReading.text}`));
  return parts.join('\n\n');
}

/**
 * `reset-plan --verify --json`: each plan gains `verified` (true only when the kernel agreed),
 * `verification` (verified, differs, not-verifiable), `kernel` (the INFO answer: devices with
 * their groups, or the errno; null when not asked) and `differences` (field, plan, kernel).
 */
export function withVerifications(doc: Record<string, unknown>, checks: readonly PlanCheck[]): Record<string, unknown> {
  const plans = (doc.plans as Record<string, unknown>[]).map((p, i) => {
    const c = checks[i]!;
    return {
      ...p,
      verified: c.verification === 'verified',
      verification: c.verification,
      verificationReason: c.reason,
      kernel: c.kernel === null ? null : c.kernel.ok ? { via: c.via, devices: c.kernel.devices.map((d) => ({ bdf: d.bdf, group: d.group })), error: null } : { via: c.via, devices: null, error: c.kernel.errno },
      differences: c.differences.map((d) => ({ field: d.field, plan: d.plan, kernel: d.kernel })),
    };
  });
  return { ...doc, plans };
}

export function renderVerifications(checks: readonly PlanCheck[], c: ChalkInstance): string {
  const out = [c.bold('Checked with the kernel (VFIO_DEVICE_GET_PCI_HOT_RESET_INFO):')];
  for (const k of checks) {
    if (k.verification === 'not-verifiable') out.push(`  ${k.device}: ${c.dim(`not verifiable: ${k.reason}`)}`);
    else if (k.verification === 'verified') out.push(`  ${k.device}: ${c.green('verified by the kernel')} (via ${k.via}: ${kernelText(k.kernel!)})`);
    else {
      out.push(`  ${k.device}: ${c.red('differs from the kernel')} (via ${k.via}: ${kernelText(k.kernel!)})`);
      for (const d of k.differences) out.push(`    ${d.field}: plan ${d.plan}, kernel ${d.kernel}`);
    }
  }
  return out.join('\n');
}

function kernelText(a: KernelAnswer): string {
  return a.ok ? a.devices.map((d) => `${d.bdf} group ${d.group ?? '-'}`).join(', ') || 'no devices' : a.errno;
}
