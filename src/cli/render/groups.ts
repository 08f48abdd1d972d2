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

function driverCell(host: Host, bdf: string, blocking: boolean, shared: boolean, c: ChalkInstance): string {
  const d = deviceOf(host, bdf);
  let text = d.driver ?? '-';
  if (isVfioBound(d)) text = c.green(text);
  else if (blocking) text = c.red(text);
  if (d.driverOverride !== null) text += ` (override ${d.driverOverride})`;
  if (blocking && shared) text += ' (blocks the group)';
  return text;
}

interface GroupRows {
  header: string[];
  /** Per group: its device rows, and the sentence explaining a shared group. */
  groups: { rows: string[][]; why: string | null }[];
}

/** The cells of the groups table, shared by the piped and the boxed form. */
function groupRows(host: Host, views: readonly GroupView[], names: PciNames, c: ChalkInstance): GroupRows {
  return {
    header: ['GROUP', 'VIABLE', 'DEVICE', 'ID / NAME', 'CLASS', 'DRIVER'].map((h) => c.bold(h)),
    groups: views.map((v) => ({
      rows: v.group.devices.map((bdf, i) => {
        const d = deviceOf(host, bdf);
        return [
          i === 0 ? String(v.group.id) : '',
          i === 0 ? (v.viable ? c.green('yes') : c.red('no')) : '',
          bdf,
          describeDevice(d, names),
          describeClass(d, names) + (d.bridge ? ' (bridge)' : ''),
          driverCell(host, bdf, v.blockers.includes(bdf), v.group.devices.length > 1, c),
        ];
      }),
      // Only shared groups need explaining; a lone device's blocker is its driver cell.
      why: v.group.devices.length > 1 ? `why shared: ${v.reason.text}` : null,
    })),
  };
}

/** Piped form: aligned columns, one row per device, group id and viability on its first row. */
export function renderGroups(host: Host, views: readonly GroupView[], names: PciNames, c: ChalkInstance): string {
  const t = groupRows(host, views, names, c);
  const rows = [t.header, ...t.groups.flatMap((g) => g.rows)];
  const reasonAfterRow = new Map<number, string>();
  let row = 0;
  for (const g of t.groups) {
    row += g.rows.length;
    if (g.why) reasonAfterRow.set(row, c.dim(`        ${g.why}`));
  }
  const lines = columns(rows, 2, (s) => stripAnsi(s).length).split('\n');
  return lines.map((line, i) => (reasonAfterRow.has(i) ? `${line}\n${reasonAfterRow.get(i)}` : line)).join('\n');
}

/** TTY form: a boxed cli-table3 table (loaded only here: pipes and --json never pay for it). */
export async function renderGroupsBoxed(host: Host, views: readonly GroupView[], names: PciNames, c: ChalkInstance): Promise<string> {
  const { default: Table } = await import('cli-table3');
  const t = groupRows(host, views, names, c);
  // chalk is the only source of escape codes (cli-table3 would colour headers red).
  const table = new Table({ head: t.header, style: { head: [], border: [] } });
  for (const g of t.groups) {
    table.push(...g.rows);
    if (g.why) table.push([{ colSpan: 2, content: '' }, { colSpan: 4, content: c.dim(g.why) }]);
  }
  return table.toString();
}
