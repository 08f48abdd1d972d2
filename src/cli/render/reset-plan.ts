import type { ChalkInstance } from 'chalk';
import type { ResetPlan, ResetPlans, SetAnalysis } from '../../plan/reset-plan.js';
import { columns, stripAnsi } from './table.js';

/** The JSON document of `reset-plan --json` (issue 5 contract; fields may be added, never renamed). */
export function resetPlansJson(r: ResetPlans): Record<string, unknown> {
  return {
    plans: r.plans,
    slotNumbering: r.slotReading,
    order: 'affected devices are listed in devfn order per bus (VFs after the other functions); the kernel list can differ after hotplug or rescan',
    ...(r.set ? { set: r.set } : {}),
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
  return out.join('\n');
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
