import type { ChalkInstance } from 'chalk';
import type { Host, IommuGroup } from '../../model/types.js';
import type { PciNames } from '../../sysfs/pciids.js';
import { deviceOf, groupBlockers, isVfioBound } from '../../model/host.js';
import { explainGroup } from '../../model/group-reason.js';
import { deviceJson, describeClass, describeDevice } from './device-json.js';
import { columns, stripAnsi } from './table.js';

export interface GroupView {
  group: IommuGroup;
  viable: boolean;
  blockers: string[];
  reason: ReturnType<typeof explainGroup>;
}

export function viewGroup(host: Host, group: IommuGroup): GroupView {
  const blockers = groupBlockers(host, group);
  return { group, viable: blockers.length === 0, blockers, reason: explainGroup(host, group) };
}

export function groupJson(host: Host, v: GroupView, names: PciNames) {
  return {
    id: v.group.id,
    viable: v.viable,
    blockers: v.blockers,
    reason: v.reason.text,
    reasonCode: v.reason.code,
    devices: v.group.devices.map((b) => deviceJson(deviceOf(host, b), names)),
  };
}

function driverCell(host: Host, bdf: string, blocking: boolean, c: ChalkInstance): string {
  const d = deviceOf(host, bdf);
  let text = d.driver ?? '-';
  if (isVfioBound(d)) text = c.green(text);
  else if (blocking) text = c.red(text);
  if (d.driverOverride !== null) text += ` (override ${d.driverOverride})`;
  return text;
}

/** Text table: one row per device, group id and viability on the group's first row. */
export function renderGroups(host: Host, views: readonly GroupView[], names: PciNames, c: ChalkInstance): string {
  const header = ['GROUP', 'VIABLE', 'DEVICE', 'ID / NAME', 'CLASS', 'DRIVER'].map((h) => c.bold(h));
  const rows: string[][] = [header];
  const reasonAfterRow = new Map<number, string>();
  for (const v of views) {
    v.group.devices.forEach((bdf, i) => {
      const d = deviceOf(host, bdf);
      const blocking = v.blockers.includes(bdf);
      rows.push([
        i === 0 ? String(v.group.id) : '',
        i === 0 ? (v.viable ? c.green('yes') : c.red('no')) : '',
        bdf,
        describeDevice(d, names),
        describeClass(d, names) + (d.bridge ? ' (bridge)' : ''),
        driverCell(host, bdf, blocking, c),
      ]);
    });
    const why = v.viable ? v.reason.text : `${v.reason.text}; not viable: ${v.blockers.map((b) => `${b} on ${deviceOf(host, b).driver}`).join(', ')}`;
    reasonAfterRow.set(rows.length - 1, c.dim(`        why: ${why}`));
  }
  const lines = columns(rows, 2, (s) => stripAnsi(s).length).split('\n');
  return lines.map((line, i) => (reasonAfterRow.has(i) ? `${line}\n${reasonAfterRow.get(i)}` : line)).join('\n');
}
